"""Writes a Delta Lake table (deltalake) and an Iceberg table (pyiceberg, SQL catalog on SQLite)
under ROOT/lake/, as those libraries write them, for the table-format refusal tests.

    python3 tests/interop/make_tables.py ROOT
"""
import os
import sys

import pyarrow as pa
from deltalake import write_deltalake
from pyiceberg.catalog.sql import SqlCatalog

root = os.path.abspath(sys.argv[1])
table = pa.table({"x": pa.array([1.0, 2.0, 3.0]), "y": pa.array([4.0, 5.0, 6.0])})

write_deltalake(os.path.join(root, "lake", "delta"), table)

warehouse = os.path.join(root, "lake", "ice")
os.makedirs(warehouse, exist_ok=True)
catalog = SqlCatalog(
    "pqm",
    uri=f"sqlite:///{os.path.join(root, 'catalog.db')}",
    warehouse=f"file://{warehouse}",
)
catalog.create_namespace("db")
iceberg = catalog.create_table("db.readings", schema=table.schema)
iceberg.append(table)
print(iceberg.metadata_location)
