use super::*;

#[test]
fn tag_limits_table() {
    let t = |n: usize| (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect::<Vec<_>>();
    assert!(check_tag_limits("o", &t(10)).is_ok());
    let e = check_tag_limits("o", &t(11)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "o: writing the version tag would give the object 11 tags; S3 allows 10"
    );
    assert!(check_tag_limits("o", &[("k".repeat(128), "v".into())]).is_ok());
    assert!(check_tag_limits("o", &[("k".repeat(129), "v".into())]).is_err());
    assert!(check_tag_limits("o", &[("k".into(), "v".repeat(256))]).is_ok());
    assert!(check_tag_limits("o", &[("k".into(), "v".repeat(257))]).is_err());
}

#[test]
fn open_parses_urls() {
    let (s, prefix) = Store::open("memory:///data/x", &StoreOptions::default()).unwrap();
    assert_eq!((s.url(), prefix.as_str()), ("memory://", "data/x"));
    assert!(!s.capabilities().tags);
    let e = Store::open("ftp://x/y", &StoreOptions::default()).unwrap_err();
    assert!(e.to_string().contains("unsupported scheme \"ftp\""), "{e}");
    if cfg!(not(feature = "s3")) {
        let e = Store::open("s3://bucket/p/", &StoreOptions::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("no s3:// backend (pqmigrate-core's `s3` feature)"),
            "{e}"
        );
        return;
    }
    let (s, prefix) = Store::open(
        "s3://bucket/parquet/year=2019/",
        &StoreOptions {
            endpoint: Some("http://127.0.0.1:1".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((s.url(), prefix.as_str()), ("s3://bucket", "parquet/year=2019/"));
    assert!(s.capabilities().tags && s.s3_bucket() == Some("bucket"));
}
