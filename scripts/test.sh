#!/usr/bin/env bash
# The full test suite: installs and starts SeaweedFS on loopback (unless PQM_S3_ENDPOINT already
# points at an S3 server), then checks formatting, lints, tests and docs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PQM_S3_ENDPOINT:-}" ]; then
  eval "$(scripts/seaweedfs.sh start)"
  trap 'scripts/seaweedfs.sh stop' EXIT
  echo "SeaweedFS S3 at $PQM_S3_ENDPOINT"
fi

# pyarrow and DuckDB read the rewritten files back in the interop test; cfn-lint (PyPI) and
# asl-validator (npm) check the shipped SAM template and state machines.
python3 -m pip install --quiet --disable-pip-version-check pyarrow duckdb cfn-lint
mkdir -p target/tools
npm install --silent --no-save --no-audit --no-fund --prefix target/tools asl-validator

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The CLI tests run the sensor_data example binary (the CLI with the sensorData steps).
cargo build --workspace --examples --locked
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
