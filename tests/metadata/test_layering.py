"""The metadata layer (store, Client, UI) reads artifact files through the shared layouts, never the components."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import jfx.metadata
from jfx.metadata import ArtifactRecord, MetadataStore
from jfx.metadata._client import Client
from jfx.pipelines import _layouts


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_no_metadata_module_imports_the_components():
    root = Path(jfx.metadata.__file__).parent
    offenders = {str(p.relative_to(root)): sorted(m for m in _imported_modules(p) if m.startswith("jfx.components"))
                 for p in root.rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_client_reads_statistics_in_the_shared_layout(tmp_path):
    uri = tmp_path / "stats"
    folder = _layouts.split_folder(uri, "train")
    folder.mkdir(parents=True)
    (folder / _layouts.STATISTICS_FILE).write_text(json.dumps(
        {"columns": {"x": {"type": "int", "count": 3, "missing": 0, "numeric": {"min": 1, "max": 3, "mean": 2}}}}))
    with MetadataStore(f"sqlite:///{tmp_path / 'md.sqlite'}") as store:
        [art_id] = store.put_artifacts([ArtifactRecord("ExampleStatistics", str(uri), properties={"splits": ["train"]})])
    with Client(f"sqlite:///{tmp_path / 'md.sqlite'}") as client:
        frame = client.artifact(art_id).read()
    assert list(frame["column"]) == ["x"] and list(frame["mean"]) == [2]
