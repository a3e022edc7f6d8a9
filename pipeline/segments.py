"""Segments to shard: AudioSet segment CSVs, the label vocabulary, and local audio directories.

The CSVs come from files users download and re-save, so parsing is strict about meaning and
lenient about form. Accepted variants of ``YTID, start, end, "mid1,mid2"``: the official three
``#`` header lines or none, a plain ``YTID,start_seconds,...`` header, an unquoted single label,
several unquoted labels as extra fields, triple-quoted labels, times without decimals, CRLF line
ends, IDs starting with ``-``. Anything else is a :class:`SegmentError` naming file and line
(or, with ``skip_bad_rows``, a logged skip). A YTID must have AudioSet's form (11 characters of
``A-Za-z0-9_-``) unless ``allow_any_id``; then it must still be a single safe path component, so
nothing read from a CSV can steer a cache or shard path outside its directory.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import logging
import math
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

from audioshards import storage
from audioshards.audio import AUDIO_EXTENSIONS

log = logging.getLogger(__name__)

YTID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{11}$")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
PACKAGED_LABELS = str(Path(__file__).with_name("data") / "class_labels_indices.csv")


class SegmentError(ValueError):
    """A segment list or label file that cannot be used as it is."""


@dataclasses.dataclass(frozen=True)
class Segment:
    """A piece of a source to turn into clips.

    ``end_s`` is None for a whole local file (no CSV); ``path`` is set for local sources.
    ``precut`` says the local file already holds just the segment (its name carries the start).
    """

    ytid: str
    start_s: float
    end_s: float | None
    labels: tuple[int, ...] = ()
    path: str | None = None
    precut: bool = False

    @property
    def key(self) -> str:
        from audioshards.shards import segment_key

        return segment_key(self.ytid, self.start_s)


# --------------------------------------------------------------------------------------------
# Label vocabulary
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LabelVocabulary:
    """AudioSet's class index: index → mid → display name."""

    entries: tuple[tuple[int, str, str], ...]

    @functools.cached_property
    def index_of(self) -> dict[str, int]:
        return {mid: index for index, mid, _ in self.entries}

    def to_manifest(self) -> list[dict[str, Any]]:
        return [{"index": i, "mid": mid, "display_name": name} for i, mid, name in self.entries]


def load_vocabulary(path: str = PACKAGED_LABELS) -> LabelVocabulary:
    """Read ``class_labels_indices.csv`` (``index,mid,display_name``); indices must be 0..n-1."""
    import pandas as pd

    try:
        table = pd.read_csv(io.StringIO(_read_text(path)), dtype={"index": int, "mid": str, "display_name": str})
    except (ValueError, KeyError) as error:
        raise SegmentError(f"{path}: not a class index CSV with index,mid,display_name columns ({error})") from error
    missing = {"index", "mid", "display_name"} - set(table.columns)
    if missing:
        raise SegmentError(f"{path}: missing columns {sorted(missing)}; expected index,mid,display_name")
    if list(table["index"]) != list(range(len(table))):
        raise SegmentError(f"{path}: indices must run 0..{len(table) - 1} in order")
    if table["mid"].duplicated().any():
        raise SegmentError(f"{path}: duplicate mid {table['mid'][table['mid'].duplicated()].iloc[0]!r}")
    return LabelVocabulary(tuple(zip(table["index"].tolist(), table["mid"].tolist(), table["display_name"].tolist())))


# --------------------------------------------------------------------------------------------
# Segment CSVs
# --------------------------------------------------------------------------------------------


def check_id(ytid: str, *, allow_any_id: bool = False) -> str:
    """Return ``ytid`` if it is safe to use in file names, else raise SegmentError."""
    if YTID_PATTERN.match(ytid):
        return ytid
    if allow_any_id and _SAFE_ID.match(ytid) and ".." not in ytid:
        return ytid
    hint = "" if allow_any_id else " (AudioSet IDs are 11 characters of A-Za-z0-9_-; --allow-any-id relaxes this)"
    raise SegmentError(f"invalid YTID {ytid!r}{hint}")


#: Longest CSV line read: an AudioSet row is under 1 KB; a longer line is a bad row (a binary
#: file, or a quote that was never closed), read no further than this, never into memory whole.
MAX_LINE_BYTES = 64 * 1024
_READ_BLOCK = 1 << 20


@dataclasses.dataclass(frozen=True)
class CsvRow:
    """One line of a segment CSV: where it starts, and its segment (None for a comment, header
    or blank line), or the error that makes it a bad row."""

    line: int  # 1-based line number
    offset: int  # byte offset of the line's start
    segment: Segment | None
    error: str | None = None


def csv_rows(
    path: str,
    vocabulary: LabelVocabulary,
    *,
    allow_any_id: bool = False,
    offset: int = 0,
    line: int = 1,
) -> Iterator[CsvRow]:
    """The rows of a segment CSV from byte ``offset`` (the start of line ``line``) on, lazily.

    Each physical line is one row, parsed on its own: AudioSet rows never span lines, so a quote
    left open, a line over MAX_LINE_BYTES or a NUL byte spoils that row only (a ``csv.reader``
    over the whole file would read everything after an open quote as one field, and raise
    ``csv.Error`` naming neither file nor line). A file that is not UTF-8 text at all (UTF-16,
    binary) raises SegmentError at once, naming it: skipping every one of its "rows" helps no one.
    """
    with _open_binary(path) as handle:
        if offset == 0:
            _check_text(path, handle.read(4096))
        handle.seek(offset)
        for number, start, raw, overlong in _physical_lines(handle, offset, line):
            if overlong:
                yield CsvRow(number, start, None, f"line longer than {MAX_LINE_BYTES} bytes (AudioSet rows are "
                                                  "under 1 KB: a binary file, or a quote never closed?)")
                continue
            if start == 0 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield CsvRow(number, start, None, f"not UTF-8 text ({error}); save the file as UTF-8")
                continue
            try:
                yield CsvRow(number, start, _parse_line(text, vocabulary, allow_any_id))
            except SegmentError as error:
                yield CsvRow(number, start, None, str(error))


def parse_segments_csv(
    path: str,
    vocabulary: LabelVocabulary,
    *,
    skip_bad_rows: bool = False,
    allow_any_id: bool = False,
) -> list[Segment]:
    """Segments of one CSV in file order. Errors name the file and the 1-based line."""
    segments = []
    for row in csv_rows(path, vocabulary, allow_any_id=allow_any_id):
        if row.error is not None:
            check_row(path, row, skip_bad_rows)
        elif row.segment is not None:
            segments.append(row.segment)
    return segments


def check_row(path: str, row: CsvRow, skip_bad_rows: bool, *, log_skip: bool = True) -> None:
    """A bad row: SegmentError naming file and line, or (``skip_bad_rows``) a logged skip."""
    message = f"{path}, line {row.line}: {row.error}"
    if not skip_bad_rows:
        raise SegmentError(message)
    if log_skip:
        log.warning("skipping %s", message)


def _parse_line(text: str, vocabulary: LabelVocabulary, allow_any_id: bool) -> Segment | None:
    """The segment of one line (without its line end), None for blank, comment and header lines."""
    text = text.rstrip("\r\n")
    if "\x00" in text:
        raise SegmentError("a NUL byte in the line (a damaged or binary file?)")
    try:  # strict: an open quote at the end of the line is an error, not a field ending there
        row = next(csv.reader([text], skipinitialspace=True, strict=True), [])
    except csv.Error as error:
        if "unexpected end of data" in str(error):
            raise SegmentError("a quote is opened and never closed on this line") from None
        if "expected after" not in str(error):
            raise SegmentError(f"not a CSV row ({error})") from None
        row = next(csv.reader([text], skipinitialspace=True), [])  # `"a"b` is read as `ab`, as always
    if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
        return None
    if row[0].strip().lower() in ("ytid", "youtube_id", "id"):
        return None  # a plain header row
    return _parse_row(row, vocabulary, allow_any_id)


def _physical_lines(handle: Any, offset: int, line: int) -> Iterator[tuple[int, int, bytes, bool]]:
    """(line number, byte offset, bytes with line end, overlong) of each line from ``offset``.
    Reads blocks, so a line without an end (a binary file) is never held in memory whole."""
    start, pending, skipping = offset, b"", False
    while True:
        block = handle.read(_READ_BLOCK)
        if not block:
            if pending and not skipping:
                yield line, start, pending, False
            return
        data = pending + block if pending else block
        position = 0
        while (end := data.find(b"\n", position)) >= 0:
            length = end + 1 - position
            if skipping:  # the rest of an overlong line, already reported
                skipping = False
            elif length > MAX_LINE_BYTES:
                yield line, start, b"", True
            else:
                yield line, start, data[position : end + 1], False
            start += length
            line += 1
            position = end + 1
        pending = data[position:]
        if len(pending) > MAX_LINE_BYTES:
            if not skipping:
                yield line, start, b"", True
                skipping = True
            start += len(pending)
            pending = b""


def _open_binary(path: str) -> Any:
    """A seekable binary file (local, or gs:// and other remote file systems through storage)."""
    try:
        return storage.open_read(path)
    except FileNotFoundError:
        raise SegmentError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SegmentError(f"{path}: a directory, not a CSV file") from None


def _check_text(path: str, head: bytes) -> None:
    """Refuse, naming the file, what is no UTF-8 text at all: UTF-16 (by its byte-order mark or
    the NUL bytes between ASCII letters) or another binary file. A byte that is not UTF-8 in
    otherwise readable text (Latin-1 accents) is a bad row instead, named by its line."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SegmentError(f"{path}: UTF-16 text, not UTF-8: save it as UTF-8 (CSV UTF-8 in a spreadsheet)")
    if head.count(b"\x00") > 1:  # one NUL is a damaged row (reported as such), more a file that is no text
        kind = "UTF-16 text without a byte-order mark" if head[1::2].count(0) > len(head) // 4 else "a binary file"
        raise SegmentError(f"{path}: NUL bytes: {kind}, not a UTF-8 CSV")


def _parse_row(row: list[str], vocabulary: LabelVocabulary, allow_any_id: bool) -> Segment:
    fields = [field.strip() for field in row]
    if len(fields) < 3:
        raise SegmentError(f"expected YTID, start, end, labels; got {len(fields)} field(s): {row!r}")
    ytid = check_id(fields[0], allow_any_id=allow_any_id)
    start_s, end_s = _seconds(fields[1], "start"), _seconds(fields[2], "end")
    if end_s <= start_s:
        raise SegmentError(f"end {end_s} is not after start {start_s}")
    mids = [mid.strip().strip('"').strip() for field in fields[3:] for mid in field.strip('"').split(",")]
    labels = []
    for mid in filter(None, mids):
        if mid not in vocabulary.index_of:
            raise SegmentError(f"unknown label mid {mid!r} (not in the class index)")
        labels.append(vocabulary.index_of[mid])
    return Segment(ytid=ytid, start_s=start_s, end_s=end_s, labels=tuple(sorted(set(labels))))


def _seconds(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SegmentError(f"{what} time {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise SegmentError(f"{what} time {text!r} must be a finite number of seconds >= 0")
    return value


def _read_text(path: str) -> str:
    try:
        return storage.read_bytes(path).decode("utf-8-sig")
    except FileNotFoundError:
        raise SegmentError(f"{path}: no such file") from None


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with storage.open_read(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Local audio directories
# --------------------------------------------------------------------------------------------


def list_audio_files(directory: str) -> list[str]:
    """Audio files under ``directory`` (recursively), as sorted POSIX paths relative to it."""
    try:
        return storage.list_files(directory, AUDIO_EXTENSIONS)
    except NotADirectoryError:
        raise SegmentError(f"--audio-dir {directory}: not a directory") from None


def directory_segments(directory: str) -> list[Segment]:
    """Unlabelled segments, one per audio file: whole files, chunked later. The id is the path
    relative to the directory (a path-based id)."""
    return [directory_segment(directory, relative) for relative in list_audio_files(directory)]


def directory_segment(directory: str, relative: str) -> Segment:
    return Segment(ytid=relative, start_s=0.0, end_s=None, path=storage.join(directory, relative), precut=True)


@functools.lru_cache(maxsize=2)
def _local_file_index(directory: str) -> dict[str, tuple[str, ...]]:
    """The audio files of ``directory`` by the id their name may carry (``<ytid>…`` and
    ``Y<ytid>…``), listed once per process: a worker matches batch after batch against it
    without walking the directory for each."""
    index: dict[str, list[str]] = {}
    for relative in list_audio_files(directory):
        stem = Path(relative).stem
        for candidate in {stem[:11], stem[1:12] if stem.startswith("Y") else ""} - {""}:
            index.setdefault(candidate, []).append(relative)
    return {candidate: tuple(files) for candidate, files in index.items()}


_LOCAL_NAME = re.compile(r"^(?P<start>\d+(?:\.\d+)?)(?:[_-].*)?$")


def match_local_files(segments: Iterable[Segment], directory: str) -> tuple[list[Segment], list[Segment]]:
    """Attach local files to CSV segments by YTID; returns (matched, unmatched).

    Recognised names: ``Y<ytid>.<ext>`` and ``<ytid>.<ext>`` (the whole video, or the segment
    already cut), ``<ytid>_<start>[...].<ext>`` with the start in seconds or milliseconds (the
    segment already cut). A file with a start in its name is matched only to that segment.
    """
    segments = list(segments)
    wanted: dict[str, list[Segment]] = {}
    for segment in segments:
        wanted.setdefault(segment.ytid, []).append(segment)
    whole: dict[str, str] = {}
    by_start: dict[tuple[str, int], str] = {}
    index = _local_file_index(directory)
    for relative in sorted({relative for ytid in wanted for relative in index.get(ytid, ())}):
        stem = Path(relative).stem
        for candidate, rest in ((stem[:11], stem[11:]), (stem[1:12], stem[12:]) if stem.startswith("Y") else ("", "")):
            if candidate not in wanted:
                continue
            path = storage.join(directory, relative)
            if rest == "":
                whole.setdefault(candidate, path)
            elif rest[0] in "_-" and (match := _LOCAL_NAME.match(rest[1:])):
                start = float(match["start"])
                for segment in wanted[candidate]:
                    if math.isclose(start, segment.start_s) or math.isclose(start, segment.start_s * 1000):
                        by_start.setdefault((candidate, int(round(segment.start_s * 1000))), path)
            break
    matched, unmatched = [], []
    for segment in segments:
        precut = by_start.get((segment.ytid, int(round(segment.start_s * 1000))))
        if precut is not None:
            matched.append(dataclasses.replace(segment, path=precut, precut=True))
        elif segment.ytid in whole:
            matched.append(dataclasses.replace(segment, path=whole[segment.ytid]))
        else:
            unmatched.append(segment)
    return matched, unmatched
