"""Components written the way a user writes them for a local root: plain ``open`` and
``pq.read_table`` on ``.uri``. The object-storage tests run them with an ``s3://`` root."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq

from jfx import Input, Output, Parameter, component
from jfx.types import Dataset, Metrics


@component
def write_table(table: Output[Dataset], rows: Parameter[int] = 100, files: Parameter[int] = 1):
    """Parquet file(s) and a text file, written with plain paths."""
    for i in range(files):
        pq.write_table(pa.table({"x": list(range(i * rows, (i + 1) * rows))}),
                       os.path.join(table.uri, f"part-{i:03d}.parquet"))
    with open(os.path.join(table.uri, "_note.txt"), "w") as fh:
        fh.write("written with open()\n")
    table.properties["rows"] = rows * files


@component
def sum_table(table: Input[Dataset], result: Output[Metrics]):
    """Reads its input with pyarrow and open() on local paths."""
    total = pq.read_table(table.uri).column("x").to_pylist()
    with open(os.path.join(table.uri, "_note.txt")) as fh:
        note = fh.read().strip()
    result.write_json({"sum": sum(total), "note": note, "input_is_local": os.path.isdir(table.uri),
                       "stored_uri": table.stored_uri})
    result.properties["sum"] = sum(total)


@component
def scratch_on_store_then_wait(out: Output[Metrics], scratch: Parameter[str] = "", marker: Parameter[str] = ""):
    """Registers a scratch prefix on the store, writes into it, then waits for ``marker`` to vanish."""
    import time

    from jfx import _storage as storage
    from jfx import current_context

    ctx = current_context()
    assert ctx is not None
    ctx.register_temporary(scratch)
    storage.write_bytes(storage.join(scratch, "part-0"), b"scratch")
    with open(marker + ".started", "w") as fh:
        fh.write("started")
    while os.path.exists(marker):
        time.sleep(0.05)
    storage.remove(scratch)
    out.write_json({"done": True})
