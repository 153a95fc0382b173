"""Reads the outputs of the column-chunk passthrough and of the full re-encode with pyarrow and
DuckDB, and checks that they hold the same values, with statistics and page index on every
column. Usage: check_outputs.py PASSTHROUGH.parquet FULL.parquet ORIGINAL.parquet"""

import math
import sys

import duckdb
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
    print(f"ok: {rows} rows, {meta.num_columns} columns, {meta.num_row_groups} row groups agree in pyarrow and DuckDB")


if __name__ == "__main__":
    main(*sys.argv[1:4])
