#!/usr/bin/env bash
# The default mode against the floor on local disk: one file of ROWS rows (1,000,000 unless
# given) migrated 1->2 by the release CLI in the default mode (copied pages checked) and with
# --trust-copied-columns, beside a crash-safe copy of the same file (cp, fsync, rename, fsync of
# the folder: what a run must do too), each on a fresh copy, ROUNDS rounds (5 unless given).
# Prints one line a run: mode, wall seconds, user, system, peak resident KB.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
rounds=${2:-5}
cargo build --release --locked --example sensor_data >&2
cli=$PWD/target/release/examples/sensor_data
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$cli" generate "file://$dir/pristine" --days 1 --files-per-day 1 --rows "$rows" >&2
file=$(find "$dir/pristine" -name '*.parq*' | head -1)
echo "# $(stat -c %s "$file") bytes, $rows rows"
for round in $(seq "$rounds"); do
  for mode in copy default trusting; do
    rm -rf "$dir/work" "$dir/copy" && cp -r "$dir/pristine" "$dir/work" && mkdir -p "$dir/copy" && sync
    case $mode in
      copy) /usr/bin/time -f "copy %e %U %S %M" sh -c \
        'cp "$1" "$2/staged" && sync "$2/staged" && mv -f "$2/staged" "$2/file.parquet" && sync "$2"' _ "$file" "$dir/copy" ;;
      default) /usr/bin/time -f "default %e %U %S %M" "$cli" run "file://$dir/work/" --schema sensorData --to 2 \
        --json > /dev/null ;;
      trusting) /usr/bin/time -f "trusting %e %U %S %M" "$cli" run "file://$dir/work/" --schema sensorData --to 2 \
        --trust-copied-columns --json > /dev/null ;;
    esac
  done
done 2>&1
