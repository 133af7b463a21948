"""What discard_staging removes after a dead execution, and what it must leave alone."""

from __future__ import annotations

import shutil
from pathlib import Path

from jfx.orchestrators._publish import discard_staging, publish_dirs, record_temporary


def _published(tmp_path: Path, name: str = "7") -> tuple[Path, Path]:
    stage = tmp_path / "node" / f".staging-{name}"
    (stage / "out").mkdir(parents=True)
    (stage / "out" / "data.txt").write_text("made by the dead execution")
    dst = tmp_path / "node" / "out" / name
    publish_dirs([(stage / "out", dst)], stage)
    return stage, dst


def test_an_unrecorded_published_folder_and_the_staging_directory_are_removed(tmp_path):
    stage, dst = _published(tmp_path)
    assert discard_staging(stage, recorded=lambda uri: False) == [dst]
    assert not dst.exists() and not stage.exists()


def test_a_folder_an_artifact_record_names_is_kept(tmp_path):
    stage, dst = _published(tmp_path)
    assert discard_staging(stage, recorded=lambda uri: uri == str(dst)) == []
    assert (dst / "data.txt").is_file() and not stage.exists()


def test_another_folder_at_the_published_path_is_kept(tmp_path):
    # e.g. another store sharing the pipeline root published there after the folder went
    stage, dst = _published(tmp_path)
    shutil.rmtree(dst)
    dst.mkdir()
    (dst / "theirs.txt").write_text("someone else's")
    assert discard_staging(stage, recorded=lambda uri: False) == []
    assert (dst / "theirs.txt").read_text() == "someone else's"


def test_without_a_store_check_published_folders_are_left_to_the_caller(tmp_path):
    stage, dst = _published(tmp_path)
    discard_staging(stage)
    assert (dst / "data.txt").is_file() and not stage.exists()


def test_registered_temporaries_are_removed_and_nothing_else(tmp_path):
    stage = tmp_path / ".staging-3"
    stage.mkdir()
    scratch, lone_file, never_made = tmp_path / "serving" / ".tmp-push-ab", tmp_path / "x.part", tmp_path / "nope"
    for path in (scratch, lone_file, never_made):
        record_temporary(stage, path)
    scratch.mkdir(parents=True)
    (scratch / "weights.npz").write_bytes(b"half")
    lone_file.write_text("half")
    (tmp_path / "serving" / "1").mkdir()
    assert sorted(discard_staging(stage)) == sorted([scratch, lone_file])
    assert not scratch.exists() and not lone_file.exists() and (tmp_path / "serving" / "1").is_dir()
