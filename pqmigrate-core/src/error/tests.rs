use super::*;

#[test]
fn answers_missing_required_headers_are_not_retried() {
    let missing = object_store::Error::Generic {
        store: "GCS",
        source: "Unable to extract metadata from headers: ETag Header missing from response".into(),
    };
    assert!(!is_transient_store_error(&missing));
    let throttled = object_store::Error::Generic {
        store: "GCS",
        source: "503 SlowDown".into(),
    };
    assert!(is_transient_store_error(&throttled));
}

#[test]
fn a_chain_is_reported_once_with_a_hint_for_missing_credentials() {
    // object_store repeats its source in its own message, as the credential failure of an
    // S3 client without credentials does.
    let imds = "Error performing token request: PUT http://169.254.169.254/latest/api/token: 403";
    let e = Error::Store {
        key: "data/".into(),
        op: "list",
        source: object_store::Error::Generic {
            store: "S3",
            source: imds.into(),
        },
    };
    let report = e.report();
    assert_eq!(report.matches("169.254.169.254").count(), 1, "{report}");
    assert!(report.starts_with("data/: list failed: Generic S3 error: "), "{report}");
    assert!(
        report.contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{report}"
    );
    let journal = Error::journal_store("_pqmigrate/runs/r/part-00001.jsonl", e);
    assert_eq!(journal.report().matches("169.254.169.254").count(), 1);
    assert_eq!(journal.kind(), ErrorKind::Journal);
}
