"""Regenerates the modules of :mod:`jfx.core._tfs_proto` from its ``.proto`` files.

``python -m jfx.core._tfs_proto._generate`` writes them in place; :func:`generate` writes
them into any folder (the test that keeps them in step with the ``.proto`` files).
Needs grpcio-tools (the ``test`` extra).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the proto import path of these files: generated modules import each other as jfx.core._tfs_proto.X_pb2
PROTO_DIR = Path("jfx", "core", "_tfs_proto")
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files() -> list[Path]:
    return sorted(HERE.glob("*.proto"))


def generate(out: Path) -> list[Path]:
    """Generates the modules of every ``.proto`` file here into ``out``; returns their paths.

    Raises:
        RuntimeError: protoc failed (its message is included).
    """
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / PROTO_DIR
        src.mkdir(parents=True)
        for f in proto_files():
            shutil.copy(f, src / f.name)
        staged = Path(tmp) / "out"
        staged.mkdir()
        include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
        args = ["protoc", f"-I{tmp}", f"-I{include}", f"--python_out={staged}", f"--pyi_out={staged}",
                f"--grpc_python_out={staged}", *(str(PROTO_DIR / f.name) for f in proto_files())]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {HERE}/*.proto (its message is above)")
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for f in sorted((staged / PROTO_DIR).iterdir()):
            if not f.name.endswith(GENERATED):
                continue
            if f.name.endswith("_pb2_grpc.py") and "rpc " not in (HERE / f.name.replace("_pb2_grpc.py", ".proto")).read_text():
                continue  # protoc writes an empty grpc module for a file without services
            shutil.copy(f, out / f.name)
            written.append(out / f.name)
    return written


def main() -> int:
    for f in HERE.iterdir():
        if f.name.endswith(GENERATED):
            f.unlink()
    for f in generate(HERE):
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
