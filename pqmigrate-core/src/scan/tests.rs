use super::*;

#[test]
fn accepts_table() {
    let spec = ScanSpec {
        suffix: ".parq.snappy".into(),
        filter: "sensorData_".into(),
        ..ScanSpec::default()
    };
    let cases = [
        ("parquet/year=2019/month=3/day=01/sensorData_001.parq.snappy", true),
        ("parquet/sensorData_001.parquet", false),
        ("parquet/other_001.parq.snappy", false),
        ("sensorData_/other_001.parq.snappy", false),
        ("_pqmigrate/runs/x/sensorData_1.parq.snappy", false),
        ("sensorData_1.parq.snappy", true),
    ];
    for (key, expected) in cases {
        assert_eq!(spec.accepts(key), expected, "{key}");
    }
}

#[test]
fn overlapping_prefixes_are_listed_once() {
    let spec = ScanSpec {
        prefixes: vec!["a/b/".into(), "a/".into(), "c/".into(), "a/".into()],
        ..ScanSpec::default()
    };
    assert_eq!(spec.effective_prefixes(), vec!["a/".to_string(), "c/".to_string()]);
    assert_eq!(ScanSpec::default().effective_prefixes(), vec![String::new()]);
}

#[test]
fn shards_partition_keys() {
    let keys: Vec<String> = (0..2000).map(|i| format!("p/k{i}.parquet")).collect();
    let shards: Vec<Shard> = (0..4).map(|i| Shard { index: i, count: 4 }).collect();
    let mut sizes = [0usize; 4];
    for k in &keys {
        let owners: Vec<_> = shards.iter().filter(|s| s.contains(k)).collect();
        assert_eq!(owners.len(), 1, "{k} belongs to exactly one shard");
        sizes[owners[0].index as usize] += 1;
    }
    assert!(sizes.iter().all(|s| (400..600).contains(s)), "{sizes:?}");
    for bad in ["", "1", "4/4", "-1/4", "a/b", "0/0"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad:?}");
    }
}

#[test]
fn manifest_lines_table() {
    let text = "\"bkt\",\"p/a+b%2Bc.parq\",\"v1\"\nbkt,p/x.parq\nother,p/y.parq\n\np/plain.parq\nbkt,q/z.parq\n";
    let spec = ScanSpec {
        prefixes: vec!["p/".into()],
        suffix: ".parq".into(),
        ..ScanSpec::default()
    };
    let keys: Vec<_> = manifest_candidates(text, Some("bkt"), &spec)
        .unwrap()
        .into_iter()
        .map(|c| c.key)
        .collect();
    assert_eq!(keys, vec!["p/a b+c.parq", "p/x.parq", "p/plain.parq"]);
}
