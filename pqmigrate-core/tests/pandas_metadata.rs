//! Files written by pandas, migrated by the sensor steps, read back by pandas: the `pandas` and
//! `ARROW:schema` footer entries stay true to the rewritten file, so pandas restores the dtypes
//! its own migration would have (a nullable `Int8`, the renamed column) and Arrow readers show
//! the footer's version.

mod support;

use bytes::Bytes;
use pqmigrate_core::rewrite::{Footer, rewrite, rewrite_appended};
use pqmigrate_core::version_key;
use pqmigrate_sensor_steps::{AddFeatures, RenameAndEncode, SCHEMA};
use support::*;

/// pandas writes a sensorData frame with its pyarrow and its fastparquet engine (three row
/// groups each) and migrates it 1->3 itself; the same files migrated here, whole and in the
/// append layout, read back by `pandas.read_parquet` with both engines give the columns,
/// dtypes and values of pandas' own migration, and pyarrow's schema metadata holds the version.
/// The one difference: fastparquet reads the dictionary-encoded `device_id` as strings, not as
/// a categorical (see `rewrite::pandas`), with the same values.
#[test]
fn pandas_reads_migrated_files_as_it_reads_its_own_migration() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap();
    python("pandas_files.py", &["write", folder]);
    let chain = [sensor_step(1, &AddFeatures), sensor_step(2, &RenameAndEncode)];
    let mut outputs = Vec::new();
    for engine in ["pyarrow", "fastparquet"] {
        let input = Bytes::from(std::fs::read(dir.path().join(format!("{engine}.parquet"))).unwrap());
        let footer = Footer::parse(engine, &input).unwrap();
        assert_eq!(footer.num_row_groups(), 3, "{engine}");
        let whole = rewrite(engine, input.clone(), &footer, &chain, &version_key(SCHEMA), 3).unwrap();
        let appended = rewrite_appended(engine, input, &footer, &chain, &version_key(SCHEMA), 3)
            .unwrap()
            .expect("the file takes the append layout");
        for (layout, data) in [("whole", whole.data), ("appended", appended.data)] {
            let path = dir.path().join(format!("{engine}.{layout}.parquet"));
            std::fs::write(&path, data).unwrap();
            outputs.push(path.to_str().unwrap().to_string());
        }
    }
    let mut args = vec!["check", folder];
    args.extend(outputs.iter().map(String::as_str));
    let report = python("pandas_files.py", &args);
    println!("{report}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok: ")).count(),
        4 * 3,
        "{report}"
    );
    assert!(report.contains("quadrant=Int8"), "{report}");
}
