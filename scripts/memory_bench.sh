#!/usr/bin/env bash
# Peak memory of whole runs as they grow: N copies of one file of 50,000 rows (about 10 MB)
# migrated 1->3 on local disk by the CLI, N = 10 and 150, at concurrency 1 and 8. Writes
# "<files> <concurrency> <peak kB> <wall s>" lines to $1/memory.txt (default target/bench-report).
# CLI: the binary to run (default target/release/sensor_data of the quick-start package).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-report}
cli=${CLI:-target/release/sensor_data}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$cli" generate "file://$work/one" --days 1 --files-per-day 1 --rows 50000 > /dev/null
file=$(find "$work/one" -name '*.parq*' | head -1)
: > "$out/memory.txt"
for files in 10 150; do
  for concurrency in 1 8; do
    rm -rf "$work/set" && mkdir -p "$work/set"
    for i in $(seq -w 1 "$files"); do cp "$file" "$work/set/sensorData_$i.parq.snappy"; done
    sync
    /usr/bin/time -f "$files $concurrency %M %e" "$cli" run "file://$work/set/" --schema sensorData --to 3 \
      --concurrency "$concurrency" --no-progress --json > /dev/null 2>> "$out/memory.txt"
  done
done
cat "$out/memory.txt"
