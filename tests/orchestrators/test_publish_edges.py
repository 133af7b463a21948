"""Publishing's less travelled paths: fingerprints of content, and discarding what a crash left half done."""

from __future__ import annotations

import json
from pathlib import Path

from jfx.orchestrators._publish import (
    discard_staging,
    final_uri,
    fingerprint,
    publish_dirs,
    record_temporary,
    remove_tree,
)


def _folder(path: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def test_a_fingerprint_hashes_every_byte_of_every_file(tmp_path):
    big = bytes(range(256)) * 5000  # over one read chunk (1 MiB) would be more, but any chunk must read all
    a = _folder(tmp_path / "a", {"x.bin": big, "sub/y.txt": b"hello"})
    same = _folder(tmp_path / "same", {"x.bin": big, "sub/y.txt": b"hello"})
    other = _folder(tmp_path / "other", {"x.bin": big[:-1] + b"\x00", "sub/y.txt": b"hello"})  # same sizes
    renamed = _folder(tmp_path / "renamed", {"x.bin": big, "sub/z.txt": b"hello"})
    fp = fingerprint(a, "Dataset", {"rows": 1})
    assert fp == fingerprint(same, "Dataset", {"rows": 1}), "the URI is not part of a fingerprint"
    assert fp != fingerprint(other, "Dataset", {"rows": 1}), "a changed byte changes the fingerprint"
    assert fp != fingerprint(renamed, "Dataset", {"rows": 1})
    assert fp != fingerprint(a, "Model", {"rows": 1}) and fp != fingerprint(a, "Dataset", {"rows": 2})


def test_a_taken_final_uri_gets_a_suffix_and_never_overwrites(tmp_path):
    first = Path(final_uri(tmp_path, "p", "n", "out", 7))
    assert first == tmp_path / "p" / "n" / "out" / "7"
    first.mkdir(parents=True)
    second = Path(final_uri(tmp_path, "p", "n", "out", 7))
    assert second.parent == first.parent and second.name.startswith("7-") and not second.exists()


def test_removing_what_is_already_gone_is_not_an_error(tmp_path):
    remove_tree(tmp_path / "never-made")
    stage = tmp_path / ".staging-1"
    assert discard_staging(stage) == []  # no staging folder, no journal: nothing to do
    assert discard_staging(stage, recorded=lambda uri: False) == []


def test_a_journal_naming_folders_that_are_gone_still_removes_the_others(tmp_path):
    stage = tmp_path / "node" / ".staging-5"
    outs = []
    for key in ("a", "b", "c"):
        _folder(stage / key, {"f.txt": key.encode()})
        outs.append((stage / key, tmp_path / "node" / key / "5"))
    publish_dirs(outs, stage)
    remove_tree(outs[0][1])  # the first one is already gone (a partial cleanup before a crash)
    removed = discard_staging(stage, recorded=lambda uri: False)
    assert sorted(removed) == sorted(dst for _, dst in outs[1:])
    assert not any(dst.exists() for _, dst in outs) and not stage.exists()


def test_an_unreadable_journal_is_taken_as_nothing_published(tmp_path):
    stage = tmp_path / "node" / ".staging-6"
    _folder(stage / "out", {"f.txt": b"x"})
    dst = tmp_path / "node" / "out" / "6"
    publish_dirs([(stage / "out", dst)], stage)
    (stage / ".jfx" / "publishing.json").write_text("{ torn")  # a journal cut short
    assert discard_staging(stage, recorded=lambda uri: False) == []
    assert dst.is_dir() and not stage.exists()  # left to the caller, and the staging folder still goes


def test_a_temporary_whose_note_cannot_be_read_does_not_stop_the_others(tmp_path):
    stage = tmp_path / ".staging-8"
    stage.mkdir()
    keep_going = [tmp_path / "t1", tmp_path / "t2"]
    for path in keep_going:
        record_temporary(stage, path)
        path.mkdir()
    notes = sorted((stage / ".jfx").iterdir())
    notes[0].unlink()
    notes[0].mkdir()  # a note that is a folder: reading it fails
    removed = discard_staging(stage)
    assert len(removed) == 1 and not stage.exists()
    assert sum(p.exists() for p in keep_going) == 1


def test_a_journal_entry_is_json_with_the_folder_identity(tmp_path):
    stage = tmp_path / "node" / ".staging-9"
    _folder(stage / "out", {"f.txt": b"x"})
    dst = tmp_path / "node" / "out" / "9"
    publish_dirs([(stage / "out", dst)], stage)
    [entry] = json.loads((stage / ".jfx" / "publishing.json").read_text())
    assert entry["uri"] == str(dst) and {"dev", "ino", "mtime_ns"} <= set(entry)


def test_a_fingerprint_is_pinned_and_ignores_the_order_of_properties(tmp_path):
    # a changed fingerprint re-runs every cached node of every existing store: pinned
    folder = _folder(tmp_path / "f", {"a.txt": b"alpha", "sub/b.bin": bytes(range(10))})
    pinned = "b996425b92a8d3f8a6b7023c60468946839f8d42"
    assert fingerprint(folder, "Dataset", {"rows": 2, "name": "x"}) == pinned
    assert fingerprint(folder, "Dataset", {"name": "x", "rows": 2}) == pinned


def test_publishing_makes_the_missing_folders_above_a_destination(tmp_path):
    stage = tmp_path / "stage"
    _folder(stage / "out", {"f.txt": b"x"})
    dst = tmp_path / "new" / "pipeline" / "node" / "out" / "1"
    publish_dirs([(stage / "out", dst)], stage)
    assert (dst / "f.txt").read_bytes() == b"x"


def test_a_temporary_can_be_recorded_before_the_staging_folder_exists(tmp_path):
    stage = tmp_path / "node" / ".staging-2"
    record_temporary(stage, tmp_path / "scratch")
    (tmp_path / "scratch").mkdir()
    assert discard_staging(stage) == [tmp_path / "scratch"]
