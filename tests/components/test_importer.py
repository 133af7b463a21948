"""Importer: external data registered as an artifact, fingerprinted, feeding any component."""

from __future__ import annotations

import json

import jfx_testlib as lib
import pytest

from jfx import Pipeline
from jfx import _storage as storage
from jfx.components import Importer
from jfx.components._importer import fingerprint_uri
from jfx.errors import InvalidPipelineError
from jfx.metadata import MetadataStore
from jfx.orchestrators import LocalDagRunner
from jfx.types import Dataset

RUNNER = LocalDagRunner(progress=False)


def importing(tmp_path, source: str, **kw) -> Pipeline:
    imported = Importer(source, Dataset, **kw)
    return Pipeline("importing", components=[imported, lib.total(numbers=imported.outputs["result"])],
                    pipeline_root=str(tmp_path / "root"), metadata_url=f"sqlite:///{tmp_path / 'md.sqlite'}")


def test_imported_folder_feeds_a_component_and_reruns_stay_cached_until_it_changes(tmp_path):
    data = tmp_path / "external"
    data.mkdir()
    (data / "numbers.json").write_text(json.dumps([1, 2, 3]))

    first = RUNNER.run(importing(tmp_path, str(data), properties={"owner": "data-team"}))
    assert lib.read(first.nodes["total"].outputs["result"][0].uri) == {"total": 6}
    [artifact] = first.nodes["import_dataset"].outputs["result"]
    assert artifact.uri == str(data)  # registered where it is, not copied
    assert artifact.properties == {"owner": "data-team", "imported": True}
    assert artifact.fingerprint

    second = RUNNER.run(importing(tmp_path, str(data), properties={"owner": "data-team"}))
    assert second.nodes["import_dataset"].outputs["result"][0].id == artifact.id
    assert second.nodes["total"].state == "cached"

    (data / "numbers.json").write_text(json.dumps([1, 2, 4]))  # same size, other bytes
    third = RUNNER.run(importing(tmp_path, str(data), properties={"owner": "data-team"}))
    changed = third.nodes["import_dataset"].outputs["result"][0]
    assert changed.id != artifact.id and changed.fingerprint != artifact.fingerprint
    assert third.nodes["total"].state == "complete"
    assert lib.read(third.nodes["total"].outputs["result"][0].uri) == {"total": 7}

    forced = RUNNER.run(importing(tmp_path, str(data), properties={"owner": "data-team"}, reimport=True))
    assert forced.nodes["import_dataset"].outputs["result"][0].id not in (artifact.id, changed.id)

    with MetadataStore(f"sqlite:///{tmp_path / 'md.sqlite'}") as store:
        result_id = third.nodes["total"].outputs["result"][0].id
        assert changed.id in store.lineage(result_id, "upstream").artifact_ids


def test_a_missing_source_fails_the_node_naming_it(tmp_path):
    result = RUNNER.run(importing(tmp_path, str(tmp_path / "nowhere")))
    assert result.nodes["import_dataset"].state == "failed"
    assert f"nothing to import at {tmp_path / 'nowhere'}" in result.nodes["import_dataset"].error
    assert result.nodes["total"].state != "complete"


def test_an_object_store_prefix_is_fingerprinted_from_its_listing(tmp_path, s3_root, monkeypatch):
    prefix = storage.join(s3_root, "external", "numbers")
    storage.write_bytes(storage.join(prefix, "numbers.json"), json.dumps([5, 6]).encode())
    reads: list[str] = []
    real_open = storage.open_uri
    monkeypatch.setattr(storage, "open_uri", lambda uri, mode="rb": (reads.append(str(uri)), real_open(uri, mode))[1])
    monkeypatch.setenv("JFX_CACHE_DIR", str(tmp_path / "cache"))
    assert fingerprint_uri(prefix) and reads == []  # sizes and ETags of one listing: nothing read
    first = RUNNER.run(importing(tmp_path, prefix))
    assert first.nodes["total"].state == "complete", first.nodes["total"].error
    assert lib.read(first.nodes["total"].outputs["result"][0].uri) == {"total": 11}
    [artifact] = first.nodes["import_dataset"].outputs["result"]
    assert artifact.uri == prefix
    storage.write_bytes(storage.join(prefix, "numbers.json"), json.dumps([5, 7]).encode())
    second = RUNNER.run(importing(tmp_path, prefix))
    assert second.nodes["import_dataset"].outputs["result"][0].fingerprint != artifact.fingerprint
    assert lib.read(second.nodes["total"].outputs["result"][0].uri) == {"total": 12}


def test_bad_arguments_are_refused_when_the_pipeline_is_built():
    with pytest.raises(InvalidPipelineError, match="artifact class"):
        Importer("/data", "Dataset")  # type: ignore[arg-type]
    with pytest.raises(InvalidPipelineError, match="non-empty"):
        Importer(" ", Dataset)


def test_gc_never_removes_imported_data_even_inside_the_root_and_forced(tmp_path):
    from jfx.metadata import RetentionPolicy, collect_garbage

    data = tmp_path / "root" / "external"  # under the pipeline root: only the Importer's mark protects it
    data.mkdir(parents=True)
    (data / "numbers.json").write_text(json.dumps([1, 2]))
    result = RUNNER.run(importing(tmp_path, str(data)))
    with MetadataStore(f"sqlite:///{tmp_path / 'md.sqlite'}") as store:
        report = collect_garbage(store, RetentionPolicy(run_ids=[result.run_id], force=True))
    [kept] = [k for k in report.kept if k.uri == str(data)]
    assert "Importer" in kept.why
    assert (data / "numbers.json").is_file()
    made = result.nodes["total"].outputs["result"][0]
    assert made.id in {a.id for a in report.artifacts}  # what the run made does go
