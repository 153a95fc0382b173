#!/usr/bin/env bash
# The full test suite: installs and starts SeaweedFS, moto server, Azurite and a GCS emulator on
# loopback (unless PQM_S3_ENDPOINT / PQM_MOTO_ENDPOINT / PQM_AZURE_ENDPOINT already point at such
# servers), then checks formatting, lints, tests and docs.
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

# Azurite (Azure Blob) and gcp-storage-emulator (GCS): the cloud stores beside S3.
if [ -z "${PQM_AZURE_ENDPOINT:-}" ]; then
  eval "$(scripts/cloud_emulators.sh start)"
  started+=(cloud_emulators)
  echo "Azurite at $PQM_AZURE_ENDPOINT, GCS emulator at $PQM_GCS_ENDPOINT"
fi

# pyarrow, DuckDB, Polars and pandas (with fastparquet) read the rewritten files back in the
# interop tests; cfn-lint (PyPI) and asl-validator (npm) check the shipped SAM template and state
# machines; kubernetes-validate and botocore check the cluster examples; deltalake and pyiceberg
# write the tables that runs refuse.
python3 -m pip install --quiet --disable-pip-version-check pyarrow duckdb polars pandas fastparquet cfn-lint kubernetes-validate botocore \
  deltalake 'pyiceberg[sql-sqlite]'
mkdir -p target/tools
npm install --silent --no-save --no-audit --no-fund --prefix target/tools asl-validator aws-local-stepfunctions@3.0.0
# The SAM CLI (PyPI) packages the template in the tests, in its own virtualenv; cargo-zigbuild and
# zig (PyPI) build the Lambda bootstraps against GLIBC 2.34, as provided.al2023 has.
[ -x target/tools/sam/bin/sam ] || {
  python3 -m venv target/tools/sam && target/tools/sam/bin/pip install --quiet --disable-pip-version-check aws-sam-cli
}
[ -x target/tools/zig/bin/cargo-zigbuild ] || {
  python3 -m venv target/tools/zig && target/tools/zig/bin/pip install --quiet --disable-pip-version-check cargo-zigbuild ziglang
}

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The CLI tests run the sensor_data example binary (the CLI with the sensorData steps), the Lambda
# tests the bootstraps of examples/sensor-lambda.
cargo build --workspace --bins --examples --locked
PATH="$PWD/target/tools/zig/bin:$PATH" cargo-zigbuild zigbuild --locked -p pqmigrate-sensor-lambda --bins \
  --target x86_64-unknown-linux-gnu.2.34
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
