"""A pipeline file for the object-storage CLI tests (its root comes from --pipeline-root)."""

import jfx_storage_lib as slib

from jfx import Pipeline

table = slib.write_table()
pipeline = Pipeline("storage-cli", components=[table, slib.sum_table(table=table.outputs["table"])])
