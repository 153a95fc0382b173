//! The Lambda bootstraps of the sensorData case (`src/bin`): each is the Lambda adapter's entry
//! point with the step crate named, so its registrations are linked in. Your own bootstraps are
//! these files with your step crate named instead.
