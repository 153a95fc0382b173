//! The shipped cluster examples (a Kubernetes Indexed Job, an AWS Batch array job) are valid for
//! their platforms and tell every worker the shard count the platform runs, checked offline by
//! `scripts/check_cluster_examples.py` (kubernetes-validate and botocore's Batch model, both
//! installed by the test command); and the check fails on broken copies.

use std::path::Path;
use std::process::Command;

fn check(folder: &Path) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(root.join("scripts/check_cluster_examples.py"))
        .arg(folder)
        .output()
        .expect("python3");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_cluster_examples_are_valid_and_agree_on_the_shard_count() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster");
    let (ok, errors) = check(&shipped);
    assert!(ok, "{errors}");

    let breakages: [(&str, &str, &str, &str); 3] = [
        (
            "k8s-indexed-job.yaml",
            "completions: 4",
            "completions: 5",
            "!= completions 5",
        ),
        (
            "k8s-indexed-job.yaml",
            "parallelism: 4",
            "parallelism: lots",
            "k8s-indexed-job.yaml",
        ),
        (
            "aws-batch-submit-job.json",
            "\"size\": 4",
            "\"size\": \"four\"",
            "aws-batch-submit-job.json",
        ),
    ];
    for (file, from, to, expected) in breakages {
        let copy = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&shipped).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
        }
        let text = std::fs::read_to_string(copy.path().join(file)).unwrap();
        assert!(text.contains(from), "{file} has {from}");
        std::fs::write(copy.path().join(file), text.replace(from, to)).unwrap();
        let (ok, errors) = check(copy.path());
        assert!(!ok, "{file} with {to} passed");
        assert!(errors.contains(expected), "{file} with {to}: {errors}");
    }
}
