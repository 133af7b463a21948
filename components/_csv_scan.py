"""Where CSV records and quoted values begin and end, found from a file's raw bytes with NumPy.

pyarrow's CSV parser (with ``newlines_in_values``, as ExampleGen reads) takes a quote that
opens and never closes as one value holding the rest of the file, without an error, and
names no line when a record is longer than its block. These functions answer both from
the bytes, with pyarrow's quoting rules: a quote opens a quoted value only at the start of
a field (after a comma, a line break or the start of the file); inside one, ``""`` is a
quote and a lone quote closes it; anywhere else a quote is an ordinary character.

The quote state changes only at runs of quote characters, and each run acts on the state
before it as one of three functions:

* a run of odd length at the start of a field *flips* it (opens a value, or closes one
  whose text ends with a comma or a line break);
* a run of odd length elsewhere leaves the parser *outside* (closes a value, or is text);
* a run of even length changes nothing (``""`` inside a value, or an empty value).

So the state at the end of a file is the parity of the flips after the last closing run,
which :func:`unclosed_quote` finds by reading backwards from the end of the file: almost
always within its last line, so checking a file costs one ``rfind`` and not a pass over it.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_bytes(b'a,b\\n1,"x\\ny"\\n2,"oops\\n3,z\\n')
    >>> unclosed_quote(p), line_and_column(p, 14)
    (14, (4, 3))
"""

from __future__ import annotations

import io
import mmap
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
from jfx import _storage as storage

__all__ = [
    "CheckedStream",
    "PartStream",
    "QuoteCheck",
    "compressed",
    "line_and_column",
    "longest_record",
    "record_boundaries",
    "record_line",
    "records_before",
    "streamed",
    "text_at",
    "unclosed_quote",
]

_QUOTE, _COMMA, _LF, _CR = 34, 44, 10, 13
_BOM = b"\xef\xbb\xbf"  # pyarrow skips it: the file's first field starts after it
_FIRST_WINDOW = 1 << 16
_MAX_WINDOW = 1 << 24
_CHUNK = 1 << 22  # forward scans read this much at a time (bounded memory: a few times this)
_EMPTY = np.zeros(0, dtype=np.int64)


def compressed(path: str | os.PathLike[str]) -> bool:
    """Whether pyarrow decompresses the file (by its name: ``.gz``, ``.bz2``, ``.zst`` ...)."""
    try:
        pa.Codec.detect(str(path))
    except (TypeError, ValueError, pa.ArrowException):
        return False
    return True


def streamed(path: str | os.PathLike[str]) -> bool:
    """Whether the file is read as one forward stream: compressed, or on an object store
    (where a whole-file memory map would mean downloading it first)."""
    return compressed(path) or storage.is_remote(str(path))


def _open(path: str | os.PathLike[str]) -> Any:
    """The file's (decompressed) bytes as a pyarrow input stream, local or on a store."""
    return storage.input_stream(str(path))


def _runs(win: np.ndarray, prev: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The quote runs of ``win`` (which no run crosses the ends of) and what each does.

    Args:
        win: bytes as uint8.
        prev: the byte before ``win`` (``_LF`` at the start of the file).

    Returns:
        ``(starts, flips, closes)``: each run's start in ``win``, and boolean masks of the
        runs that flip the state and of those that leave it outside.
    """
    q = np.flatnonzero(win == _QUOTE)
    if not len(q):
        return _EMPTY, np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(q) != 1) + 1, [len(q)]))
    starts = q[bounds[:-1]]
    odd = (np.diff(bounds) & 1).astype(bool)
    before = win[np.maximum(starts - 1, 0)]
    if starts[0] == 0:
        before[0] = prev
    field_start = (before == _COMMA) | (before == _LF) | (before == _CR)
    return starts, field_start & odd, ~field_start & odd


def _states(flips: np.ndarray, closes: np.ndarray, inside: bool) -> np.ndarray:
    """The state (True: inside a quoted value) after each run, from the state before the first."""
    if not len(flips):
        return np.zeros(0, dtype=bool)
    n_flips = np.cumsum(flips)
    last_close = np.maximum.accumulate(np.where(closes, np.arange(len(closes)), -1))
    since = n_flips - np.where(last_close >= 0, n_flips[np.maximum(last_close, 0)], 0)
    start = np.where(last_close >= 0, False, inside)
    return start ^ (since & 1).astype(bool)


def unclosed_quote(path: str | os.PathLike[str]) -> int | None:
    """The byte offset of a quote that opens a value and never closes, or ``None``.

    The offset is of the last quote that opened a value, which is the one still open at
    the end of the file (a compressed file's offset is into its decompressed bytes).
    """
    if streamed(path):
        check = QuoteCheck()
        with _open(path) as raw:
            while chunk := raw.read(_CHUNK):
                check.feed(chunk)
        return check.finish()
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return None
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            data = np.frombuffer(mm, dtype=np.uint8)
            try:
                first = len(_BOM) if mm[: len(_BOM)] == _BOM else 0
                inside, opened = _state_at_end(mm, data, first, _LF, False)
            finally:
                del data  # the mmap cannot close while a view of it lives
    return opened if inside else None


def _state_at_end(buf: mmap.mmap | bytes, data: np.ndarray, first: int, prev: int,
                  inside: bool) -> tuple[bool, int | None]:
    """The quote state at the end of ``buf[first:]``, read back to its last closing run.

    Args:
        buf: the bytes (for ``rfind``); ``data``: the same bytes as uint8.
        first: where to start; ``prev``: the byte before it; ``inside``: the state there.

    Returns:
        ``(inside, opened)``: the state at the end, and the offset of the last run that
        flipped it after the last closing run (``None`` if there is none).
    """
    hi, flips_after, last_flip, width = len(data), 0, None, _FIRST_WINDOW
    while hi > first:
        p = buf.rfind(b'"', first, hi)  # quote-free stretches cost a memrchr, not NumPy
        if p < 0:
            break
        lo = max(first, p + 1 - width)
        while lo > first and data[lo - 1] == _QUOTE:  # do not cut a run in two
            lo -= 1
        starts, flips, closes = _runs(data[lo:p + 1], int(data[lo - 1]) if lo > first else prev)
        flip_at = np.flatnonzero(flips)
        close_at = np.flatnonzero(closes)
        if len(close_at):
            flip_at = flip_at[flip_at > close_at[-1]]
        if last_flip is None and len(flip_at):
            last_flip = lo + int(starts[flip_at[-1]])
        flips_after += len(flip_at)
        if len(close_at):
            return bool(flips_after % 2), last_flip  # outside after that run, whatever came before
        hi, width = lo, min(2 * width, _MAX_WINDOW)
    return inside ^ bool(flips_after % 2), last_flip


class QuoteCheck:
    """:func:`unclosed_quote` for bytes that come in chunks (a decompressed stream): each
    chunk is read back to its last closing run, as a whole file is.

    Example:
        >>> check = QuoteCheck()
        >>> for chunk in (b'a,b\\n1,"x', b'""', b'"\\n2,"y\\n'):
        ...     check.feed(chunk)
        >>> check.finish()
        14
    """

    def __init__(self) -> None:
        self.inside = False
        self.open_quote: int | None = None
        self._offset = 0  # of the next byte fed, after what is held back
        self._prev = _LF
        self._held = b""  # a trailing quote run, which the next chunk may continue
        self._started = False

    def feed(self, chunk: bytes) -> None:
        data = self._held + chunk
        if not self._started:
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._held = data  # too short to tell a byte order mark yet
                return
            self._started = True
            if data.startswith(_BOM):
                data, self._offset = data[len(_BOM):], len(_BOM)
        cut = len(data.rstrip(b'"'))
        self._held = data[cut:]
        self._take(data[:cut])

    def finish(self) -> int | None:
        """The offset of the quote still open at the end, or ``None``."""
        self._started = True
        held, self._held = self._held, b""
        self._take(held)
        return self.open_quote if self.inside else None

    def _take(self, data: bytes) -> None:
        if not data:
            return
        self.inside, opened = _state_at_end(data, np.frombuffer(data, dtype=np.uint8), 0, self._prev, self.inside)
        if opened is not None:
            self.open_quote = self._offset + opened
        self._prev = data[-1]
        self._offset += len(data)


class CheckedStream(io.RawIOBase):
    """A file's decompressed bytes for pyarrow to parse, checked by a :class:`QuoteCheck` as
    they are read, so a compressed file is decompressed once."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self._raw = _open(path)
        self.check = QuoteCheck()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        chunk = self._raw.read(len(b))
        self.check.feed(chunk)
        b[: len(chunk)] = chunk
        return len(chunk)

    def open_quote(self) -> int | None:
        """Read what pyarrow left (it stops at an error), then the quote still open, if any."""
        while chunk := self._raw.read(_CHUNK):
            self.check.feed(chunk)
        return self.check.finish()

    def close(self) -> None:
        self._raw.close()
        super().close()


class PartStream(io.RawIOBase):
    """Part of a local CSV file as a stream of its own: the header record (bytes up to
    ``header_end``), then the whole records in bytes ``[start, end)`` (see
    :func:`record_boundaries`)."""

    def __init__(self, path: str | os.PathLike[str], header_end: int, start: int, end: int) -> None:
        super().__init__()
        self._fh = open(path, "rb")  # noqa: SIM115 - closed with the stream
        self._spans = [(0, header_end), (start, end)]

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while self._spans:
            pos, end = self._spans[0]
            want = min(len(b), end - pos)
            if want > 0:
                self._fh.seek(pos)
                got = self._fh.readinto(memoryview(b)[:want])
                if got:
                    self._spans[0] = (pos + got, end)
                    return got
            self._spans.pop(0)
        return 0

    def close(self) -> None:
        self._fh.close()
        super().close()


class _Forward:
    """A forward scan over a file's (decompressed) bytes in chunks: the offsets of the line
    breaks that end records (those outside quoted values). It looks at every quote, so it
    only runs where an error is worded or a long record measured."""

    def __init__(self) -> None:
        self.inside = False
        self.offset = 0  # of the next chunk's first byte
        self.begin = 0  # of the first record: after a byte order mark
        self.prev = _LF
        self.window, self.window_offset = np.zeros(0, dtype=np.uint8), 0

    def ends(self, path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
        """Yield arrays of the offsets of record-ending line breaks, in file order."""
        with _open(path) as raw:
            carry = b""
            first = True
            while True:
                chunk = raw.read(_CHUNK)
                data = carry + chunk
                if first:
                    first = False
                    if data[: len(_BOM)] == _BOM:
                        data, self.offset = data[len(_BOM):], len(_BOM)
                        self.begin = self.offset
                if chunk:
                    # Keep a trailing quote run whole: the next chunk may continue it.
                    cut = len(data.rstrip(b'"'))
                    data, carry = data[:cut], data[cut:]
                else:
                    carry = b""
                if data:
                    yield self.feed(np.frombuffer(data, dtype=np.uint8))
                if not chunk:
                    return

    def feed(self, win: np.ndarray) -> np.ndarray:
        self.window, self.window_offset = win, self.offset  # the bytes the ends just given are in
        starts, flips, closes = _runs(win, self.prev)
        states = _states(flips, closes, self.inside)
        breaks = np.flatnonzero((win == _LF) | (win == _CR))
        run_before = np.searchsorted(starts, breaks) - 1
        inside = np.where(run_before >= 0, states[np.maximum(run_before, 0)] if len(states) else False, self.inside)
        if len(states):
            self.inside = bool(states[-1])
        ends = breaks[~inside] + self.offset
        self.prev = int(win[-1])
        self.offset += len(win)
        return ends


def longest_record(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(length in bytes, start offset)`` of the file's longest record (line breaks included)."""
    best, best_start, start = 0, 0, None
    scan = _Forward()
    for ends in scan.ends(path):
        start = scan.begin if start is None else start
        if not len(ends):
            continue
        spans = np.diff(np.concatenate(([start], ends + 1)))
        i = int(np.argmax(spans))
        if spans[i] > best:
            best, best_start = int(spans[i]), (start if i == 0 else int(ends[i - 1]) + 1)
        start = int(ends[-1]) + 1
    start = scan.begin if start is None else start
    if scan.offset - start > best:  # the last record, without a final line break
        best, best_start = scan.offset - start, start
    return best, best_start


def record_boundaries(path: str | os.PathLike[str], every: int) -> list[int]:
    """Where records start, about ``every`` bytes apart, in a local uncompressed file: the
    first offset is where the header record ends, the last is the file's size. The bytes
    between two offsets are whole records, so a file can be read in parts by several
    workers, each with the header.

    Each cut is the first line break at or after its target that ends a record, found by
    reading back from it to the last closing quote run (almost always within its line); one
    inside a quoted value is passed by scanning forward from the quote that opened it. So
    only the bytes near each cut are read (the file is memory-mapped), not the whole file.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
        >>> _ = p.write_bytes(b'a,b\\n1,"x\\ny"\\n2,z\\n3,w\\n')
        >>> record_boundaries(p, 4)
        [4, 12, 20]
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return [0]
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            data = np.frombuffer(mm, dtype=np.uint8)
            try:
                cuts: list[int] = []
                known = len(_BOM) if mm[: len(_BOM)] == _BOM else 0  # a record starts here
                target = known
                while (cut := _record_end_after(mm, data, known, target)) is not None and cut < size:
                    cuts.append(cut)
                    known, target = cut, cut + every
            finally:
                del data  # the mmap cannot close while a view of it lives
    return [*cuts, size]


def _record_end_after(buf: mmap.mmap, data: np.ndarray, known: int, target: int) -> int | None:
    """The offset after the first record-ending line break at or after ``target`` (a record
    starts at ``known`` <= ``target``), or ``None`` if no record ends there."""
    size = len(data)
    lf, cr = buf.find(b"\n", target), buf.find(b"\r", target)
    p = min(x for x in (lf, cr, size) if x >= 0)
    if p == size:
        return None
    if data[p] == _CR and p + 1 < size and data[p + 1] == _LF:
        p += 1  # a CRLF ends at its LF
    inside, opened = _state_at_end(buf, data[:p + 1], known, _LF, False)
    if not inside:
        return p + 1
    if opened is None:  # pragma: no cover - inside a value means a quote opened it
        return None
    return _forward_record_end(data, opened)


def _forward_record_end(data: np.ndarray, opened: int) -> int | None:
    """The offset after the first record-ending line break after the quote run at ``opened``
    (outside a quoted value just before it), scanning forward a window at a time."""
    scan = _Forward()
    scan.offset, scan.prev = opened, int(data[opened - 1]) if opened else _LF
    size, width = len(data), _FIRST_WINDOW
    while scan.offset < size:
        hi = min(scan.offset + width, size)
        while hi < size and data[hi - 1] == _QUOTE:  # do not cut a run in two
            hi += 1
        ends = scan.feed(data[scan.offset:hi])
        if len(ends):
            end = int(ends[0])
            if data[end] == _CR and end + 1 < size and data[end + 1] == _LF:
                end += 1
            return end + 1
        width = min(2 * width, _MAX_WINDOW)
    return None


def records_before(path: str | os.PathLike[str], offset: int) -> int:
    """How many records (the header included; empty lines are not records) start before
    byte ``offset``, which is where a record starts."""
    seen, start = 0, None
    scan = _Forward()
    for ends in scan.ends(path):
        start = scan.begin if start is None else start
        starts = np.concatenate(([start], ends[:-1] + 1)) if len(ends) else _EMPTY
        nonempty = starts[ends > starts] if len(ends) else _EMPTY
        if len(nonempty) and nonempty[-1] >= offset:
            return seen + int(np.searchsorted(nonempty, offset))
        seen += len(nonempty)
        if len(ends):
            start = int(ends[-1]) + 1
    return seen


def record_line(path: str | os.PathLike[str], record: int) -> int | None:
    """The 1-based line (as an editor shows it) where CSV record ``record`` starts (header = 1;
    empty lines are not records), or ``None`` past the last record, in one pass over the file.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
        >>> _ = p.write_bytes(b'a,b\\n1,"x\\ny"\\n\\n2,z')
        >>> [record_line(p, r) for r in (1, 2, 3, 4)]
        [1, 2, 5, None]
    """
    seen, lines = 0, 1  # records before this window; the line this window starts on
    carried: int | None = None  # where the record still open at this window's start starts
    carried_line = 1
    scan = _Forward()
    for ends in scan.ends(path):
        base = scan.window_offset
        breaks = np.flatnonzero(scan.window == _LF) + base
        if carried is None:
            carried = scan.begin
        starts = np.concatenate(([carried], ends[:-1] + 1)) if len(ends) else _EMPTY
        nonempty = starts[ends > starts] if len(ends) else _EMPTY
        if seen + len(nonempty) >= record:
            at = int(nonempty[record - seen - 1])
            return carried_line if at == carried else lines + int(np.searchsorted(breaks, at))
        seen += len(nonempty)
        if len(ends):
            carried = int(ends[-1]) + 1
            carried_line = lines + int(np.searchsorted(breaks, carried))
        lines += len(breaks)
    if carried is not None and scan.offset > carried and seen + 1 == record:  # the last, without a line break
        return carried_line
    return None


def line_and_column(path: str | os.PathLike[str], offset: int) -> tuple[int, int]:
    """The 1-based line and character column (as an editor shows them) of byte ``offset``."""
    line, line_start, done = 1, 0, 0
    with _open(path) as raw:
        while done < offset and (chunk := raw.read(min(_CHUNK, offset - done))):
            breaks = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == _LF)
            if len(breaks):
                line += len(breaks)
                line_start = done + int(breaks[-1]) + 1
            done += len(chunk)
    before = text_at(path, line_start, offset - line_start) if line_start < offset else ""
    return line, len(before) + 1


def text_at(path: str | os.PathLike[str], offset: int, limit: int) -> str:
    """Up to ``limit`` bytes of the file from ``offset``, decoded leniently (for messages)."""
    with _open(path) as raw:
        if not streamed(path):
            raw.seek(offset)
        else:
            left = offset
            while left > 0 and (chunk := raw.read(min(_CHUNK, left))):
                left -= len(chunk)
        return raw.read(limit).decode("utf-8", errors="replace")
