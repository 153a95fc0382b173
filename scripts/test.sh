#!/usr/bin/env bash
# The full test suite: installs and starts SeaweedFS and moto server on loopback (unless
# PQM_S3_ENDPOINT / PQM_MOTO_ENDPOINT already point at such servers), then checks formatting,
# lints, tests and docs.
set -euo pipefail
cd "$(dirname "$0")/.."

started=()
stop_servers() {
  for server in "${started[@]}"; do "scripts/$server.sh" stop; done
}
trap stop_servers EXIT
if [ -z "${PQM_S3_ENDPOINT:-}" ]; then
  eval "$(scripts/seaweedfs.sh start)"
  started+=(seaweedfs)
  echo "SeaweedFS S3 at $PQM_S3_ENDPOINT"
fi
# moto server: the second S3 implementation, which ignores one condition the probe must find.
if [ -z "${PQM_MOTO_ENDPOINT:-}" ]; then
  eval "$(scripts/moto.sh start)"
  started+=(moto)
  echo "moto S3 at $PQM_MOTO_ENDPOINT"
fi

# pyarrow and DuckDB read the rewritten files back in the interop test; cfn-lint (PyPI) and
# asl-validator (npm) check the shipped SAM template and state machines; kubernetes-validate and
# botocore check the cluster examples.
python3 -m pip install --quiet --disable-pip-version-check pyarrow duckdb polars cfn-lint kubernetes-validate botocore
mkdir -p target/tools
npm install --silent --no-save --no-audit --no-fund --prefix target/tools asl-validator

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The CLI tests run the sensor_data example binary (the CLI with the sensorData steps), the Lambda
# tests the bootstraps of examples/sensor-steps.
cargo build --workspace --bins --examples --locked
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
