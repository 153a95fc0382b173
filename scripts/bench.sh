#!/usr/bin/env bash
# Runs the criterion benches against SeaweedFS (or the S3 in PQM_S3_ENDPOINT), measures peak
# memory on a ~1 GB file and the CPU split between tool and server, and writes BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PQM_S3_ENDPOINT:-}" ]; then
  eval "$(scripts/seaweedfs.sh start)"
  trap 'scripts/seaweedfs.sh stop' EXIT
fi
out=target/bench-report
mkdir -p "$out"

# The copy-in-place bench rewrites a 330 MB object dozens of times; SeaweedFS reclaims
# overwritten bytes only when its volumes are vacuumed. When free space runs low, ask for it.
reclaim() {
  while sleep 20; do
    if [ -n "${PQM_WEED_MASTER:-}" ] && [ "$(df --output=avail -k "${PQM_WEED_DIR:-/tmp}" | tail -1)" -lt 20000000 ]; then
      curl -s -o /dev/null "$PQM_WEED_MASTER/vol/vacuum?garbageThreshold=0.01" || true
    fi
  done
}

# PQM_BENCH_REUSE_CRITERION=1 keeps the criterion results of an earlier run and redoes the rest;
# PQM_BENCHES="copy_in_place" runs only the named criterion benches.
if [ -z "${PQM_BENCH_REUSE_CRITERION:-}" ]; then
  reclaim & reclaimer=$!
  benches=()
  for bench in ${PQM_BENCHES:-rewrite end_to_end scan copy_in_place sql_step}; do benches+=(--bench "$bench"); done
  cargo bench --workspace --locked "${benches[@]}" 2>&1 | tee "$out/criterion.log"
  echo "${PQM_BENCHES:-rewrite end_to_end scan copy_in_place sql_step}" > "$out/benches.txt"
  kill "$reclaimer" 2>/dev/null || true
else
  : > "$out/benches.txt"
fi
cargo build --release --locked --example sensor_data
cli=target/release/examples/sensor_data
export PQM_S3_ENDPOINT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Peak memory: one file of ~1 GB uncompressed (2,000,000 rows x 65 columns), migrated 1->2 on S3
# at concurrency 1, streamed in parts.
big=pqm-bench-big-$$
"$cli" generate "s3://$big/big" --days 1 --files-per-day 1 --rows 2000000 > "$out/big-generate.txt"
/usr/bin/time -v "$cli" run "s3://$big/big/" --schema sensorData --to 2 --concurrency 1 --json \
  > "$out/big-run.json" 2> "$out/big-time.txt"

# Peak memory when copied pages are trusted (only the read columns come down, the data region is
# copied by the server): the same ~1 GB file, and one a quarter of its size, to show it flat.
for rows in 2000000 500000; do
  bucket=pqm-bench-trust$rows-$$
  "$cli" generate "s3://$bucket/big" --days 1 --files-per-day 1 --rows "$rows" > /dev/null
  /usr/bin/time -v "$cli" run "s3://$bucket/big/" --schema sensorData --to 2 --concurrency 1 \
    --trust-copied-columns --json > "$out/trust$rows-run.json" 2> "$out/trust$rows-time.txt"
done

# Local disk, whole process: one file of 556,000 rows migrated 1->2 by the CLI (data region
# copied by the kernel), against `cp` of the same file and against the floor of a crash-safe
# replacement (copy, fsync, rename over the old file, fsync of the folder: what the run must do
# too); five rounds each, fresh copies between.
local=$(mktemp -d)
"$cli" generate "file://$local/pristine" --days 1 --files-per-day 1 --rows 556000 > /dev/null
file=$(find "$local/pristine" -name '*.parq*' | head -1)
: > "$out/local-times.txt"
for round in 1 2 3 4 5; do
  rm -rf "$local/work" "$local/copy" && cp -r "$local/pristine" "$local/work" && mkdir -p "$local/copy" && sync
  /usr/bin/time -f "cp %e %M" cp "$file" "$local/copy/" 2>> "$out/local-times.txt"
  sync
  /usr/bin/time -f "durable %e %M" sh -c 'cp "$1" "$2/staged" && sync "$2/staged" && mv -f "$2/staged" "$2/$(basename "$1")" && sync "$2"' \
    _ "$file" "$local/copy" 2>> "$out/local-times.txt"
  /usr/bin/time -f "run %e %M" "$cli" run "file://$local/work/" --schema sensorData --to 2 \
    --trust-copied-columns --json > "$out/local-run.json" 2>> "$out/local-times.txt"
done
stat -c %s "$file" > "$out/local-size.txt"
rm -rf "$local"

# CPU split at concurrency 1 and 8: the end_to_end workload (200 files of 2,780 rows) run by the
# CLI; tool CPU from time -v, server CPU from its /proc entry.
for c in 1 8; do
  bucket=pqm-bench-cpu$c-$$
  "$cli" generate "s3://$bucket/cpu" --days 1 --files-per-day 200 --rows 2780 > /dev/null
  before=$(cpu_ticks "$PQM_WEED_PID" 2>/dev/null || echo 0)
  /usr/bin/time -v "$cli" run "s3://$bucket/cpu/" --schema sensorData --to 2 --concurrency "$c" --json \
    > "$out/cpu$c-run.json" 2> "$out/cpu$c-time.txt"
  after=$(cpu_ticks "$PQM_WEED_PID" 2>/dev/null || echo 0)
  echo "$((after - before))" > "$out/cpu$c-server-ticks.txt"
done
# End to end through the append layout: 200 files of 20,000 rows (about 6.7 MB each, above S3's
# 5 MiB part minimum) migrated 1->2 at concurrency 8 by the CLI, copied in place (checked and
# trusting) and streamed whole (today's path before the append layout), one after the other.
for path in appended trusted streamed; do
  bucket=pqm-bench-e2e-$path-$$
  "$cli" generate "s3://$bucket/e2e" --days 1 --files-per-day 200 --rows 20000 > /dev/null
  flags=()
  [ "$path" = trusted ] && flags=(--trust-copied-columns)
  [ "$path" = streamed ] && flags=(--no-copy-in-place)
  /usr/bin/time -v "$cli" run "s3://$bucket/e2e/" --schema sensorData --to 2 --concurrency 8 "${flags[@]}" \
    --json > "$out/e2e-$path-run.json" 2> "$out/e2e-$path-time.txt"
done
# Peak memory as runs grow: 10 and 150 copies of a 10 MB file, concurrency 1 and 8, local disk.
CLI="$cli" scripts/memory_bench.sh "$out" > /dev/null
# The default mode against a crash-safe copy at 1,000,000 rows, local disk (five rounds).
scripts/copy_floor_bench.sh > "$out/copy-floor.txt" 2> /dev/null
getconf CLK_TCK > "$out/clk_tck.txt"
weed version 2>/dev/null | head -1 > "$out/weed-version.txt" || true

python3 scripts/benchmarks_md.py "$out" > BENCHMARKS.md
cat BENCHMARKS.md
