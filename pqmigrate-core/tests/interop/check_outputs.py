"""Reads a fast output (column-chunk passthrough or append layout) and the full re-encode with
pyarrow, DuckDB and Polars, and checks that they hold the same values, with statistics and page
index on every column, row groups and row counts as in the original.
Usage: check_outputs.py FAST.parquet FULL.parquet ORIGINAL.parquet"""

import math
import sys

import duckdb
import polars as pl
import pyarrow.parquet as pq


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def main(passthrough, full, original):
    a = pq.read_table(passthrough)
    b = pq.read_table(full)
    if a.schema != b.schema:
        fail(f"schemas differ:\n{a.schema}\n---\n{b.schema}")
    if not a.equals(b):
        fail("pyarrow reads different values from the two outputs")

    meta = pq.ParquetFile(passthrough).metadata
    before = pq.ParquetFile(original).metadata
    if meta.num_row_groups != before.num_row_groups:
        fail(f"{meta.num_row_groups} row groups, the original has {before.num_row_groups}")
    for rg in range(meta.num_row_groups):
        if meta.row_group(rg).num_rows != before.row_group(rg).num_rows:
            fail(f"row group {rg} holds {meta.row_group(rg).num_rows} rows, the original {before.row_group(rg).num_rows}")
        single = pq.ParquetFile(passthrough).read_row_group(rg)
        if not single.equals(pq.ParquetFile(full).read_row_group(rg)):
            fail(f"pyarrow reads row group {rg} differently from the two outputs")
    for rg in range(meta.num_row_groups):
        for col in range(meta.num_columns):
            column = meta.row_group(rg).column(col)
            if column.statistics is None:
                fail(f"no statistics for {column.path_in_schema} in row group {rg}")
            if not (column.has_offset_index and column.has_column_index):
                fail(f"no page index for {column.path_in_schema} in row group {rg}")

    db = duckdb.connect()
    for left, right in [(passthrough, full), (full, passthrough)]:
        extra = db.execute(
            f"SELECT count(*) FROM (SELECT * FROM read_parquet('{left}') EXCEPT ALL SELECT * FROM read_parquet('{right}'))"
        ).fetchone()[0]
        if extra != 0:
            fail(f"DuckDB finds {extra} rows of {left} missing from {right}")
    rows, magnitude = db.execute(f"SELECT count(*), sum(magnitude) FROM read_parquet('{passthrough}')").fetchone()
    expected_rows, expected = db.execute(
        f"SELECT count(*), sum(sqrt(x * x + y * y)) FROM read_parquet('{original}')"
    ).fetchone()
    if rows != expected_rows:
        fail(f"{rows} rows, expected {expected_rows}")
    if not math.isclose(magnitude, expected, rel_tol=1e-9):
        fail(f"sum(magnitude) {magnitude} but sum(sqrt(x^2+y^2)) of the original is {expected}")
    filtered = pq.read_table(passthrough, filters=[("x", ">", 0.5)])
    if not filtered.equals(pq.read_table(full, filters=[("x", ">", 0.5)])):
        fail("pyarrow's filtered reads differ")

    eager_a, eager_b = pl.read_parquet(passthrough), pl.read_parquet(full)
    if not eager_a.equals(eager_b):
        fail("Polars reads different values from the two outputs")
    lazy = lambda path: pl.scan_parquet(path).filter(pl.col("x") > 0.5).select(["x", "magnitude"]).collect()
    lazy_a, lazy_b = lazy(passthrough), lazy(full)
    if lazy_a.height == 0 or not lazy_a.equals(lazy_b):
        fail(f"Polars' lazy filtered reads differ ({lazy_a.height} and {lazy_b.height} rows)")
    print(
        f"ok: {rows} rows, {meta.num_columns} columns, {meta.num_row_groups} row groups agree in pyarrow, DuckDB and Polars"
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
