"""Alembic migrations of the metadata schema (``env.py`` + ``versions/``).

Adding a migration: write ``versions/NNNN_<what>.py`` (``down_revision`` = the previous
one) and set ``jfx.metadata._schema.HEAD_REVISION`` to its revision; a test checks both.
"""
