//! pqmigrate lambda
