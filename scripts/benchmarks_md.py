"""Writes BENCHMARKS.md from criterion's estimates and the measurements of scripts/bench.sh."""

import json
import os
import platform
import re
import statistics
import subprocess
import sys

report = sys.argv[1]
criterion = "target/criterion"


def median_ns(group, bench):
    with open(os.path.join(criterion, group, bench, "new", "estimates.json")) as f:
        return json.load(f)["median"]["point_estimate"]


def median_interval_ns(group, bench):
    with open(os.path.join(criterion, group, bench, "new", "estimates.json")) as f:
        ci = json.load(f)["median"]["confidence_interval"]
        return ci["lower_bound"], ci["upper_bound"]


def read(name):
    with open(os.path.join(report, name)) as f:
        return f.read()


def time_v(name):
    text = read(name)
    field = lambda label: re.search(re.escape(label) + r":\s*(.+)", text).group(1).strip()
    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return {
        "rss_mb": int(field("Maximum resident set size (kbytes)")) / 1024,
        "user": float(field("User time (seconds)")),
        "sys": float(field("System time (seconds)")),
        "wall": seconds,
        "cpu": field("Percent of CPU this job got"),
    }


def lock_version(name):
    text = open("Cargo.lock").read()
    m = re.search(r'name = "' + re.escape(name) + r'"\nversion = "([^"]+)"', text)
    return m.group(1) if m else "?"


cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem_gb = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 1024 / 1024
rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()

raw, fast, fast_unverified, full = (median_ns("rewrite", b) for b in ["raw_copy", "passthrough", "passthrough_unverified", "full_reencode"])
e2e = {c: 200 / (median_ns("end_to_end", f"files/{c}") / 1e9) for c in (1, 8, 32)}
scan = 10_000 / (median_ns("scan", "objects") / 1e9)

big = time_v("big-time.txt")
big_run = json.loads(read("big-run.json"))
cpu = {c: time_v(f"cpu{c}-time.txt") for c in (1, 8)}
ticks = int(read("clk_tck.txt").strip())
server = {c: int(read(f"cpu{c}-server-ticks.txt").strip()) / ticks for c in (1, 8)}
runs = {c: json.loads(read(f"cpu{c}-run.json")) for c in (1, 8)}

# Copy in place (issue: move only the bytes that change).
moved = json.loads(read("copy-in-place.json"))
cip = {
    b: median_ns("copy_in_place", b)
    for b in ["raw_get_put", "server_copy_only", "appended_trusted", "appended_checked", "streamed_checked"]
}
trust = {rows: (time_v(f"trust{rows}-time.txt"), json.loads(read(f"trust{rows}-run.json"))) for rows in (2000000, 500000)}
local_times = [line.split() for line in read("local-times.txt").splitlines() if line.strip()]
local_cp = sorted(float(t[1]) for t in local_times if t[0] == "cp")
local_run = sorted(float(t[1]) for t in local_times if t[0] == "run")
local_durable = sorted(float(t[1]) for t in local_times if t[0] == "durable")
local_rss = max(int(t[2]) for t in local_times if t[0] == "run") / 1024
local_size = int(read("local-size.txt").strip())


def ms(ns):
    return f"{ns / 1e6:.1f} ms"


print("# Benchmarks\n")
all_benches = ["rewrite", "end_to_end", "scan", "copy_in_place"]
ran = read("benches.txt").split() if os.path.exists(os.path.join(report, "benches.txt")) else all_benches
if not ran:
    print(
        "Measured by `scripts/bench.sh` with `PQM_BENCH_REUSE_CRITERION=1`: this run measured everything outside "
        "criterion; the criterion figures are an earlier run's. Every ratio within a section comes from one run.\n"
    )
elif set(ran) >= set(all_benches):
    print("Measured by `scripts/bench.sh` (criterion medians; every ratio below comes from the same run).\n")
else:
    kept = ", ".join(f"`{b}`" for b in all_benches if b not in ran)
    print(
        "Measured by `scripts/bench.sh` (criterion medians). This run measured the criterion benches "
        + ", ".join(f"`{b}`" for b in ran)
        + f" and everything outside criterion; the {kept} figures are the previous full run's. "
        "Every ratio within a section comes from one run.\n"
    )
print("## Machine\n")
print(f"- {os.cpu_count()} cores ({cpu_model}), {mem_gb:.0f} GiB, {platform.system()} {platform.release()}")
print(f"- {rustc}; parquet {lock_version('parquet')}, arrow {lock_version('arrow')}, object_store {lock_version('object_store')}")
print(f"- S3: SeaweedFS `{read('weed-version.txt').strip()}` (`weed mini`) on loopback, the same machine\n")
print("## Rewrite of one file (in-memory store)\n")
print("The seed's file: 139,000 rows, 65 columns, row groups of 50,000, Snappy; migration 1->2 adds four columns computed from `x` and `y`.\n")
print("| path | median | vs raw copy | full re-encode / this |")
print("| --- | ---: | ---: | ---: |")
print(f"| raw get + copy + put (floor) | {ms(raw)} | 1.0x | |")
print(f"| passthrough, copied pages verified (default) | {ms(fast)} | {fast / raw:.1f}x | {full / fast:.1f}x |")
print(f"| passthrough, `--trust-copied-columns` | {ms(fast_unverified)} | {fast_unverified / raw:.1f}x | {full / fast_unverified:.1f}x |")
print(f"| full decode and re-encode | {ms(full)} | {full / raw:.1f}x | 1.0x |")
snappy = median_ns("rewrite", "snappy_decompression_only")
print(f"| Snappy decompression of every page of the file, nothing else, one thread (the check's floor) | {ms(snappy)} | {snappy / raw:.2f}x | |\n")
raw_lo, raw_hi = median_interval_ns("rewrite", "raw_copy")
fast_lo, fast_hi = median_interval_ns("rewrite", "passthrough")
print(
    f"Criterion's 95% intervals of the medians: floor {ms(raw_lo)} to {ms(raw_hi)}, checked passthrough {ms(fast_lo)} to "
    f"{ms(fast_hi)}, so the default's ratio lies between {fast_lo / raw_hi:.2f}x and {fast_hi / raw_lo:.2f}x. The floor is "
    f"mostly page faults and moves between runs on this shared machine more than the rewrite does.\n"
)
print("## End to end on S3 (200 files of 2,780 rows, about 1 MB each, migration 1->2)\n")
print("| concurrency | files/s | vs concurrency 1 |")
print("| ---: | ---: | ---: |")
for c in (1, 8, 32):
    print(f"| {c} | {e2e[c]:.1f} | {e2e[c] / e2e[1]:.2f}x |")
print()
print("CPU during the same workload run by the CLI (`sensor_data run`, release build):\n")
print("| concurrency | wall | tool CPU (user+sys) | tool CPU % | server CPU | files/s |")
print("| ---: | ---: | ---: | ---: | ---: | ---: |")
for c in (1, 8):
    t = cpu[c]
    print(f"| {c} | {t['wall']:.1f} s | {t['user'] + t['sys']:.1f} s | {t['cpu']} | {server[c]:.1f} s | {200 / t['wall']:.1f} |")
print()
print("## Scan (10,000 objects on S3: listing + one tag look-up each, 32 in flight)\n")
print(f"{scan:,.0f} objects/s\n")
print("## Peak memory on a large file\n")
print(f"One file of 2,000,000 rows x 65 columns (about 1 GB uncompressed; {big_run['bytes_in'] / 1e6:,.0f} MB as stored), migrated 1->2 on S3 at concurrency 1, output streamed as a multipart upload:\n")
print(f"- peak RSS **{big['rss_mb']:.0f} MB** (`/usr/bin/time -v`), wall {big['wall']:.1f} s, {big_run['bytes_out'] / 1e6:,.0f} MB written")

if os.path.exists(os.path.join(report, "memory.txt")):
    rows = [line.split() for line in read("memory.txt").splitlines() if line.strip()]
    peak = {(int(f), int(c)): (int(kb) / 1024, float(w)) for f, c, kb, w in rows}
    print("\n## Peak memory as runs grow (local disk, `scripts/memory_bench.sh`)\n")
    print("N copies of one file of 50,000 rows (about 10 MB) migrated 1->3 by the CLI, whole process:\n")
    print("| concurrency | 10 files | 150 files | 150 / 10 |")
    print("| ---: | ---: | ---: | ---: |")
    for c in (1, 8):
        (small, ws), (large, wl) = peak[(10, c)], peak[(150, c)]
        print(f"| {c} | {small:.0f} MB, {ws:.2f} s | {large:.0f} MB, {wl:.2f} s | {large / small:.2f}x |")
    print("\nThe binaries put glibc's malloc on one arena (`pqmigrate_core::malloc::one_arena`).")

if os.path.exists(os.path.join(report, "copy-floor.txt")):
    runs = {}
    lines = read("copy-floor.txt").splitlines()
    size, rows = re.match(r"# (\d+) bytes, (\d+) rows", lines[0]).groups()
    for line in lines[1:]:
        mode, wall, user, system, kb = line.split()
        runs.setdefault(mode, []).append((float(wall), float(user) + float(system), int(kb) / 1024))

    print("\n## The default mode against the floor (local disk, `scripts/copy_floor_bench.sh`)\n")
    print(
        f"One file of {int(rows):,} rows ({int(size) / 1e6:,.0f} MB) migrated 1->2 by the release CLI, each run on a fresh "
        f"copy, beside a crash-safe copy of the same file (cp, fsync, rename, fsync of the folder); "
        f"{len(runs['copy'])} rounds, medians (and ranges):\n"
    )
    print("| run | wall | vs the copy | user + system CPU | peak memory |")
    print("| --- | ---: | ---: | ---: | ---: |")
    copy = statistics.median(w for w, _, _ in runs["copy"])
    for mode, label in [("copy", "crash-safe copy"), ("default", "default (copied pages checked)"),
                        ("trusting", "`--trust-copied-columns`")]:
        walls, cpus, mbs = zip(*runs[mode])
        print(
            f"| {label} | {statistics.median(walls):.2f} s ({min(walls):.2f} to {max(walls):.2f}) | {statistics.median(walls) / copy:.1f}x | "
            f"{statistics.median(cpus):.2f} s | {statistics.median(mbs):.0f} MB ({min(mbs):.0f} to {max(mbs):.0f}) |"
        )
    cpu = statistics.median(c for _, c, _ in runs["default"])
    print(
        f"\nThe default's CPU time spread perfectly over {os.cpu_count()} cores is {cpu / os.cpu_count():.2f} s, "
        f"{cpu / os.cpu_count() / copy:.1f}x the copy: the floor of its wall time on this machine. The Snappy decompression "
        "every copied page goes through to be checked takes longer than a copy of the whole file (the in-memory table "
        "above)."
    )

print("\n## Moving only the bytes that change (S3, one file at the reference size)\n")
t, c_, st = moved["appended_trusted"], moved["appended_checked"], moved["streamed_checked"]
region, file_bytes = moved["region_end"], moved["file_bytes"]
footer_bytes = file_bytes - region
new_bytes = t["bytes_out"] - region
print(
    f"One sensorData file of 1,000,000 rows ({file_bytes / 1e6:,.1f} MB stored, data region {region / 1e6:,.1f} MB, "
    f"footer {footer_bytes / 1e3:,.1f} KB), migrated 1->2 on SeaweedFS. Bytes from the engine's own counters "
    f"(`received`, `sent`, `copied` of the run's records); times are criterion medians of the whole migration.\n"
)
print("| path | median | vs raw GET + PUT | received | sent | copied by the server |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
print(f"| raw GET + PUT of the file (floor of today's path) | {ms(cip['raw_get_put'])} | 1.00x | {file_bytes / 1e6:,.1f} MB | {file_bytes / 1e6:,.1f} MB | |")
print(
    f"| the server's `UploadPartCopy` of the data region alone (floor of the appended paths) | {ms(cip['server_copy_only'])} | "
    f"{cip['server_copy_only'] / cip['raw_get_put']:.2f}x | | 0.0 MB | {region / 1e6:,.1f} MB |"
)
for name, label, rec in [
    ("appended_trusted", "copied in place, `--trust-copied-columns`", t),
    ("appended_checked", "copied in place, copied pages checked (default)", c_),
    ("streamed_checked", "streamed whole (`--no-copy-in-place`)", st),
]:
    print(
        f"| {label} | {ms(cip[name])} | {cip[name] / cip['raw_get_put']:.2f}x | {rec['received'] / 1e6:,.1f} MB | "
        f"{rec['sent'] / 1e6:,.1f} MB | {rec['copied'] / 1e6:,.1f} MB |"
    )
print()
print(
    f"Needed at least: the footer and the chunks of the read columns `x` and `y` "
    f"({(footer_bytes + moved['read_chunks']) / 1e6:,.2f} MB) down; the new chunks and the new footer "
    f"({new_bytes / 1e6:,.2f} MB) up.\n"
)
print("Peak memory with `--trust-copied-columns` (CLI, S3, concurrency 1):\n")
print("| file | stored | peak RSS | wall |")
print("| --- | ---: | ---: | ---: |")
for rows in (500000, 2000000):
    tv, run = trust[rows]
    print(f"| {rows:,} rows | {run['bytes_in'] / 1e6:,.0f} MB | {tv['rss_mb']:.0f} MB | {tv['wall']:.1f} s |")
print()
print(
    f"Local disk, whole process (`sensor_data run file://...` with `--trust-copied-columns`, one file of 556,000 rows, "
    f"{local_size / 1e6:,.1f} MB; data region copied by `copy_file_range`), five rounds each: median "
    f"{local_run[2]:.2f} s against `cp` of the same file {local_cp[2]:.2f} s, and against {local_durable[2]:.2f} s for a "
    f"crash-safe replacement of it by hand (`cp`, `sync` of the file, `mv` over the old one, `sync` of the folder: "
    f"the least a run that never leaves a torn file must do), peak RSS {local_rss:.0f} MB.\n"
)

e2e_paths = [
    ("streamed", "streamed whole (`--no-copy-in-place`), today's path before the append layout"),
    ("appended", "copied in place, copied pages checked (default)"),
    ("trusted", "copied in place, `--trust-copied-columns`"),
]
if all(os.path.exists(os.path.join(report, f"e2e-{p}-run.json")) for p, _ in e2e_paths):
    print("\n## End to end through the append layout (S3, 200 files, concurrency 8)\n")
    print(
        "200 sensorData files of 20,000 rows (each above S3's 5 MiB part minimum), migrated 1->2 by the CLI at "
        "concurrency 8, each path on its own copy of the data set in the same run. Bytes from the run's summary.\n"
    )
    print("| path | wall | files/s | vs streamed | received | sent | copied by the server | tool CPU |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    e2e_runs = {p: (json.loads(read(f"e2e-{p}-run.json")), time_v(f"e2e-{p}-time.txt")) for p, _ in e2e_paths}
    rate = {p: r["by_status"].get("migrated", 0) / (r["elapsed_ms"] / 1000) for p, (r, _) in e2e_runs.items()}
    for p, label in e2e_paths:
        r, tv = e2e_runs[p]
        print(
            f"| {label} | {r['elapsed_ms'] / 1000:.1f} s | {rate[p]:.1f} | {rate[p] / rate['streamed']:.2f}x | "
            f"{r['received'] / 1e6:,.0f} MB | {r['sent'] / 1e6:,.0f} MB | {r['copied'] / 1e6:,.0f} MB | "
            f"{tv['user'] + tv['sys']:.1f} s |"
        )
    wire = lambda p: e2e_runs[p][0]["received"] + e2e_runs[p][0]["sent"]
    print(
        f"\nThrough the network the trusting append moves {wire('trusted') / 1e6:,.0f} MB against "
        f"{wire('streamed') / 1e6:,.0f} MB streamed ({wire('streamed') / wire('trusted'):.0f}x less), and "
        f"{rate['trusted'] / rate['streamed']:.2f}x the files/s. The files/s gain far less than the bytes: SeaweedFS "
        f"makes its copies on the same two cores, so much of the work moves from the tool to the server instead of "
        f"leaving the machine, as it does on S3, and "
        f"the gain moves between runs with the server's state."
    )

print("\n## Against the targets\n")
print("| target | measured | met |")
print("| --- | --- | --- |")
print(f"| passthrough <= 2.0x the raw copy | {fast / raw:.1f}x verified, {fast_unverified / raw:.1f}x with `--trust-copied-columns` | {'yes' if fast / raw <= 2.0 else 'no'} |")
print(f"| passthrough >= 5x faster than full re-encode | {full / fast:.1f}x verified, {full / fast_unverified:.1f}x unverified | {'yes' if full / fast >= 5 else 'no'} |")
print(f"| peak RSS of the ~1 GB file at concurrency 1 < 200 MB | {big['rss_mb']:.0f} MB | {'yes' if big['rss_mb'] < 200 else 'no'} |")
print(f"| end to end at concurrency 8 >= 1.5x concurrency 1 | {e2e[8] / e2e[1]:.2f}x | {'yes' if e2e[8] / e2e[1] >= 1.5 else 'no'} |")
need_down = footer_bytes + moved["read_chunks"]
checks = [
    ("trusting append: received <= 1.1x (footer + read chunks)", f"{t['received'] / need_down:.2f}x", t["received"] <= 1.1 * need_down),
    ("trusting append: sent <= 1.1x (new chunks + footer)", f"{t['sent'] / new_bytes:.2f}x", t["sent"] <= 1.1 * new_bytes),
    ("trusting append: wall <= 0.3x raw GET + PUT", f"{cip['appended_trusted'] / cip['raw_get_put']:.2f}x", cip["appended_trusted"] <= 0.3 * cip["raw_get_put"]),
    ("checked append: sent <= 1.1x (new chunks + footer)", f"{c_['sent'] / new_bytes:.2f}x", c_["sent"] <= 1.1 * new_bytes),
    ("checked append: wall <= 0.7x raw GET + PUT", f"{cip['appended_checked'] / cip['raw_get_put']:.2f}x", cip["appended_checked"] <= 0.7 * cip["raw_get_put"]),
    ("local disk, whole process: <= 1.5x `cp`", f"{local_run[2] / local_cp[2]:.2f}x ({local_run[2] / local_durable[2]:.2f}x a crash-safe `cp`)", local_run[2] <= 1.5 * local_cp[2]),
    ("peak RSS <= 64 MB on the ~1 GB file, trusting", f"{trust[2000000][0]['rss_mb']:.0f} MB ({trust[500000][0]['rss_mb']:.0f} MB at a quarter of the size)", trust[2000000][0]["rss_mb"] <= 64),
]
for label, value, met in checks:
    print(f"| {label} | {value} | {'yes' if met else 'no'} |")

busy = {c: (cpu[c]["user"] + cpu[c]["sys"] + server[c]) / cpu[c]["wall"] for c in (1, 8)}
gain_32 = e2e[32] / e2e[8] - 1
if abs(gain_32) < 0.1:
    beyond_8 = "no more"
elif gain_32 > 0:
    beyond_8 = f"{gain_32:.0%} more, as more waits overlap and fill the {os.cpu_count() - busy[8]:.2f} core left idle at 8"
else:
    beyond_8 = f"{-gain_32:.0%} less, as more objects contend for the same cores"
print("\n## What the numbers say\n")
print(
    f"- **Scaling.** At concurrency 1 the tool and the server together keep {busy[1]:.2f} of the 2 cores busy: each object is "
    f"a chain of round trips (head, footer, one ranged read per row group, upload), and one side waits while the other works. "
    f"At concurrency 8 they keep {busy[8]:.2f} cores busy, so throughput rises {e2e[8] / e2e[1]:.1f}x until the machine's "
    f"CPU is the limit; concurrency 32 gives {e2e[32]:.1f} against {e2e[8]:.1f} files/s at 8, {beyond_8}. The server (SeaweedFS, on the "
    f"same 2 cores) spends about {server[8] / max(cpu[8]['user'] + cpu[8]['sys'], 1e-9):.1f}x the CPU of the tool "
    f"({server[8]:.1f} s against {cpu[8]['user'] + cpu[8]['sys']:.1f} s), so with the store on other machines, as S3 is, the "
    f"same tool CPU would go roughly {busy[8] / max((cpu[8]['user'] + cpu[8]['sys']) / cpu[8]['wall'], 1e-9):.0f}x further."
)
verdict = (
    "which keeps the default within the 2.0x target"
    if fast / raw <= 2.0
    else "which puts the default above the 2.0x target"
)
print(
    f"- **Where a rewrite's time goes.** The floor copies the file's bytes once into a new buffer ({ms(raw)}; most of it is "
    f"the kernel handing out and zeroing fresh pages, which the rewrite's output pays as well). Passthrough without page "
    f"checks ({ms(fast_unverified)}) runs each row group on two threads: while one writes its copied chunks (they pass once "
    f"through the Parquet writer into an output buffer sized for the whole file, handed to the store without being "
    f"concatenated), the other decodes `x` and `y`, runs the step and encodes the four new columns, which come last. Checking the copied "
    f"chunks (every page parsed and decompressed, about 70 MB of output) is shared by both threads beside that work and "
    f"adds {ms(fast - fast_unverified)}, {verdict}. Decoding and re-encoding all 65 columns costs {ms(full)}. The ratio is "
    f"one object's latency with both cores free; with many objects in flight the cores are shared, and the end-to-end "
    f"numbers above are the measure of throughput."
)
print(
    f"- **Memory.** The large file streams through: a row group is rewritten while the next is fetched, and the output "
    f"goes out "
    f"in parts of at least 8 MiB of a multipart upload completed with If-Match, so the peak ({big['rss_mb']:.0f} MB) tracks the row group "
    f"size (50,000 rows, ~16 MB compressed), not the file size."
)
print(
    f"- **Against the reference case.** Its pandas step took about 40 s of Lambda time per file; the passthrough path migrates "
    f"the example's file in {ms(fast)} here. Its files were larger (about 200 MB uncompressed against "
    f"70 MB) and its 40 s included S3 transfers, so the ratio ({40 / (fast / 1e9):.0f}x) is indicative only."
)
print(
    f"- **Copy in place.** The bytes moved are what the targets ask: {t['received'] / 1e6:,.1f} MB down and "
    f"{t['sent'] / 1e6:,.1f} MB up for a {file_bytes / 1e6:,.0f} MB file, against {st['received'] / 1e6:,.0f} MB and "
    f"{st['sent'] / 1e6:,.0f} MB streamed whole. The wall time is not: SeaweedFS carries out `UploadPartCopy` by reading "
    f"and writing the {region / 1e6:,.0f} MB itself (it replicates each stored chunk through its volume servers), on the "
    f"same two cores. That copy alone, with nothing of ours beside it, takes {ms(cip['server_copy_only'])}, "
    f"{cip['server_copy_only'] / cip['raw_get_put']:.2f}x the raw GET + PUT: the appended paths "
    f"({cip['appended_trusted'] / cip['raw_get_put']:.2f}x and {cip['appended_checked'] / cip['raw_get_put']:.2f}x) sit "
    f"on this floor, and no client can reach 0.3x against this server on this machine. Splitting the copy into 32 MiB "
    f"parts side by side was slower still (10.4 s), so one part per 5 GiB is sent. On S3 that copy runs in the store's "
    f"fleet, not on the machine or in the function. On local disk a {local_size / 1e6:,.0f} MB file takes "
    f"{local_run[2]:.2f} s against `cp`'s {local_cp[2]:.2f} s; `cp` does not make its copy durable. Most of the run is "
    f"the fsync of the new file before the rename (the kernel writes the copied region out, about 0.08 s here); the "
    f"rename frees nothing, as the old file is kept as a link for rollback. A crash-safe `cp` by hand (copy, sync, "
    f"rename over the old file, which ext4 then frees, sync of the folder) takes {local_durable[2]:.2f} s. On XFS or "
    f"btrfs the copy is a reflink, which leaves the fsync little to write (not measured here: this machine has ext4 only)."
)
if os.path.exists(os.path.join(criterion, "sql_step", "sql", "new", "estimates.json")):
    compiled, sql = median_ns("sql_step", "compiled"), median_ns("sql_step", "sql")
    print(
        f"- **A SQL step.** `examples/sql-migrations/sensorData/V2__add_features.sql` migrates the reference file "
        f"(1->2, from the in-memory store) in {ms(sql)} against {ms(compiled)} for the compiled step it restates "
        f"({sql / compiled:.2f}x, target at most 1.3x; `cargo bench --bench sql_step`, both in one run). Its columns "
        f"are planned once per schema; the two it reads cross to DataFusion's Arrow and its four back as Arrow IPC."
    )
