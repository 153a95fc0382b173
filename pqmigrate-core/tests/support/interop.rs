//! Other readers of the files a rewrite writes: Python scripts under `tests/interop/` (pyarrow,
//! DuckDB, Polars, pandas with fastparquet; `scripts/test.sh` installs them).

use std::path::Path;

/// Runs `tests/interop/<script>` with `args`; its standard output.
///
/// # Panics
/// When the script fails, with what it printed.
pub fn python(script: &str, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop").join(script);
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed (its readers come from the pip install in scripts/test.sh):\n{stdout}\n{stderr}",
        script.display()
    );
    stdout
}

/// Writes `files` into `dir` and runs `tests/interop/<script>` on their paths; its standard
/// output.
///
/// # Panics
/// When the script fails, with what it printed.
pub fn python_check(script: &str, dir: &Path, files: &[(&str, bytes::Bytes)]) -> String {
    let paths: Vec<String> = files
        .iter()
        .map(|(name, data)| {
            let path = dir.join(name);
            std::fs::write(&path, data).unwrap();
            path.to_str().unwrap().to_string()
        })
        .collect();
    python(script, &paths.iter().map(String::as_str).collect::<Vec<_>>())
}
