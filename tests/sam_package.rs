//! The deploy path, offline: the README's build route gives bootstraps that run on
//! `provided.al2023` (at most GLIBC 2.34), `sam validate --lint` passes on the shipped template,
//! and `sam package` (the SAM CLI from PyPI) finds every `CodeUri` where the README's build lines
//! put the bootstraps and uploads them to S3 (SeaweedFS here, through `AWS_ENDPOINT_URL`).
//! scripts/test.sh installs the SAM CLI and cargo-zigbuild into `target/tools/` and builds the
//! bootstraps with `cargo zigbuild --target x86_64-unknown-linux-gnu.2.34`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

const WORKSPACE: &str = env!("CARGO_MANIFEST_DIR");

/// The bootstraps built for `provided.al2023` by scripts/test.sh.
fn bootstrap(handler: &str) -> PathBuf {
    let path = Path::new(WORKSPACE).join(format!("target/x86_64-unknown-linux-gnu/debug/bootstrap-{handler}"));
    assert!(
        path.exists(),
        "{} is missing: scripts/test.sh builds it with `cargo zigbuild -p pqmigrate-sensor-lambda --bins --target x86_64-unknown-linux-gnu.2.34`",
        path.display()
    );
    path
}

fn sam() -> Command {
    let sam = Path::new(WORKSPACE).join("target/tools/sam/bin/sam");
    assert!(
        sam.exists(),
        "the SAM CLI is missing: scripts/test.sh installs it into target/tools/sam"
    );
    let mut command = Command::new(sam);
    command.env("SAM_CLI_TELEMETRY", "0");
    command
}

/// The newest GLIBC symbol version a binary needs.
fn glibc_needed(binary: &Path) -> (u32, u32) {
    let out = Command::new("objdump")
        .arg("-T")
        .arg(binary)
        .output()
        .expect("objdump runs");
    String::from_utf8_lossy(&out.stdout)
        .split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let version: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .max()
        .expect("a dynamically linked binary")
}

#[test]
fn the_bootstraps_run_on_provided_al2023() {
    for handler in ["migrate", "scan", "batch"] {
        let needed = glibc_needed(&bootstrap(handler));
        assert!(
            needed <= (2, 34),
            "bootstrap-{handler} needs GLIBC {needed:?}, provided.al2023 has 2.34"
        );
    }
}

#[test]
fn sam_validates_and_packages_the_template_as_the_readme_builds_it() {
    // The README's layout: the template under pqmigrate-lambda/deploy/, each bootstrap under
    // target/lambda/<handler>/bootstrap of the workspace.
    let root = tempfile::tempdir().unwrap();
    let deploy = root.path().join("pqmigrate-lambda/deploy");
    std::fs::create_dir_all(&deploy).unwrap();
    std::fs::copy(
        Path::new(WORKSPACE).join("pqmigrate-lambda/deploy/template.json"),
        deploy.join("template.json"),
    )
    .unwrap();
    for handler in ["migrate", "scan"] {
        let folder = root.path().join("target/lambda").join(handler);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(bootstrap(handler), folder.join("bootstrap")).unwrap();
    }

    let validated = sam()
        .args(["validate", "--lint", "--region", "us-east-1", "--template-file"])
        .arg(deploy.join("template.json"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&validated.stdout).to_string() + &String::from_utf8_lossy(&validated.stderr);
    assert!(validated.status.success(), "sam validate --lint: {said}");
    assert!(said.contains("is a valid SAM Template"), "{said}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("sam-package"));
    let packaged = root.path().join("packaged.yaml");
    let out = sam()
        .current_dir(root.path())
        .args([
            "package",
            "--region",
            "us-east-1",
            "--s3-bucket",
            &bucket,
            "--template-file",
        ])
        .arg(deploy.join("template.json"))
        .arg("--output-template-file")
        .arg(&packaged)
        .env("AWS_ENDPOINT_URL", s3_endpoint())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sam package: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let template = std::fs::read_to_string(&packaged).unwrap();
    let uploaded: Vec<String> = template
        .lines()
        .filter_map(|line| line.trim().strip_prefix("CodeUri: "))
        .map(|uri| {
            uri.strip_prefix(&format!("s3://{bucket}/"))
                .unwrap_or_else(|| panic!("CodeUri {uri} is not in the bucket"))
                .to_string()
        })
        .collect();
    assert_eq!(uploaded.len(), 2, "{template}");
    // Each upload is a zip holding the bootstrap, executable, byte for byte.
    for (key, handler) in uploaded.iter().zip(["migrate", "scan"]) {
        let zip = rt.block_on(raw_bytes(&store, key));
        let path = root.path().join(format!("{handler}.zip"));
        std::fs::write(&path, &zip).unwrap();
        let check = Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile, hashlib\n\
                 z = zipfile.ZipFile(sys.argv[1])\n\
                 info = z.getinfo('bootstrap')\n\
                 print(hashlib.sha256(z.read('bootstrap')).hexdigest(), oct(info.external_attr >> 16))",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&check.stdout).to_string();
        assert!(
            check.status.success(),
            "{key}: {said}{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let (digest, mode) = said.trim().split_once(' ').unwrap();
        let shas: Vec<String> = ["migrate", "scan"]
            .iter()
            .map(|h| sha256(&std::fs::read(bootstrap(h)).unwrap()))
            .collect();
        assert!(shas.contains(&digest.to_string()), "{key} holds neither bootstrap");
        assert!(
            u32::from_str_radix(mode.trim_start_matches("0o"), 8).unwrap() & 0o111 != 0,
            "{key}: bootstrap is not executable ({mode})"
        );
    }
}

fn sha256(data: &[u8]) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, hashlib; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(data)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
