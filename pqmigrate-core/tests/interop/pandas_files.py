"""pandas files for the core's pandas test.

`write DIR` writes a sensorData frame with each pandas engine (DIR/<engine>.parquet) and the same
1->3 migration done in pandas (DIR/<engine>.pandas.parquet). `check DIR FILE...` reads each
FILE (pqmigrate's migration of DIR/<engine>.parquet, named <engine>.<anything>.parquet) with both
engines and compares it with pandas' own migration read the same way: the same columns, dtypes
and values, and pyarrow showing the version key in the schema's metadata. Prints one line a
comparison; exits non-zero at the first difference.
"""
import json
import sys
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

warnings.simplefilter("ignore")  # pandas 3 warns that its fastparquet engine is deprecated
ENGINES = ["pyarrow", "fastparquet"]
VERSION_KEY = b"schema:sensorData:version"


def original():
    n = 3000
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=n), rng.normal(size=n)
    x[[3, 500, 2100]] = np.nan
    y[[5, 1500]] = np.nan
    x[7] = y[7] = 0.0  # magnitude 0: x_norm is missing
    return pd.DataFrame({
        "ts": pd.date_range("2019-03-01", periods=n, freq="s", tz="UTC"),
        "device_id": [f"dev-{(i * 7919) % 13:02}" for i in range(n)],
        "sensor_type": ["accelerometer" if i % 3 else "gyroscope" for i in range(n)],
        "x": x,
        "y": y,
        "v00": rng.normal(size=n),
    })


def pandas_migration(df):
    """Steps 1->2 and 2->3 as a pandas user writes them."""
    x, y = df["x"], df["y"]
    magnitude = np.sqrt(x * x + y * y)
    df["magnitude"] = magnitude
    df["angle"] = np.arctan2(y, x)
    df["x_norm"] = (x / magnitude).where(magnitude != 0)
    quadrant = np.where(x >= 0, np.where(y >= 0, 1, 4), np.where(y >= 0, 2, 3))
    df["quadrant"] = pd.array(quadrant, dtype="Int8")
    df.loc[x.isna() | y.isna(), "quadrant"] = pd.NA
    df = df.rename(columns={"sensor_type": "sensor_kind"})
    df["device_id"] = df["device_id"].astype("category")
    return df


def write(folder):
    df = original()
    sizes = {"pyarrow": {"row_group_size": 1000}, "fastparquet": {"row_group_offsets": 1000}}
    for engine in ENGINES:
        path = f"{folder}/{engine}.parquet"
        df.to_parquet(path, engine=engine, **sizes[engine])
        pandas_migration(pd.read_parquet(path, engine=engine)).to_parquet(
            f"{folder}/{engine}.pandas.parquet", engine=engine)


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def check(folder, files):
    for path in files:
        writer = path.rsplit("/", 1)[-1].split(".")[0]
        theirs_path = f"{folder}/{writer}.pandas.parquet"
        for reader in ENGINES:
            ours = pd.read_parquet(path, engine=reader)
            theirs = pd.read_parquet(theirs_path, engine=reader)
            if list(ours.columns) != list(theirs.columns):
                fail(f"{path} read by {reader}: columns {list(ours.columns)}, pandas has {list(theirs.columns)}")
            if not ours.index.equals(theirs.index):
                fail(f"{path} read by {reader}: index {ours.index}, pandas has {theirs.index}")
            for column in theirs.columns:
                want, got = str(theirs[column].dtype), str(ours[column].dtype)
                if reader == "fastparquet" and column == "device_id":
                    # Listed as strings, not categorical: fastparquet would give every row group
                    # the first one's dictionary. The values must still be the same.
                    if got not in ("object", "str"):
                        fail(f"{path} read by {reader}: device_id is {got}")
                elif got != want:
                    fail(f"{path} read by {reader}: {column} is {got}, pandas' own migration gives {want}")
                if want == "category":
                    # The same values and the same set of categories; their order is the order
                    # each writer met them in.
                    if list(ours[column].astype(str)) != list(theirs[column].astype(str)):
                        fail(f"{path} read by {reader}: {column} values differ")
                    if got == "category" and sorted(ours[column].cat.categories) != sorted(theirs[column].cat.categories):
                        fail(f"{path} read by {reader}: {column} categories differ")
                    continue
                pd.testing.assert_series_equal(ours[column], theirs[column], check_names=True)
            print(f"ok: {path} read by {reader}: {len(ours)} rows, dtypes "
                  + ", ".join(f"{c}={ours[c].dtype}" for c in ours.columns))
        metadata = pq.read_table(path).schema.metadata or {}
        if metadata.get(VERSION_KEY) != b"3":
            fail(f"{path}: pyarrow's schema metadata has {VERSION_KEY!r} = {metadata.get(VERSION_KEY)!r}")
        listed = [c["field_name"] for c in json.loads(metadata[b"pandas"])["columns"]]
        if listed != list(pq.read_schema(path).names):
            fail(f"{path}: the pandas entry lists {listed}")
        print(f"ok: {path}: version 3 in pyarrow's schema metadata, pandas entry lists {len(listed)} columns")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        check(sys.argv[2], sys.argv[3:])
