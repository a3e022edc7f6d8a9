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
import os
import re
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)

YTID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{11}$")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
#: Extensions treated as audio when listing a directory (anything ffmpeg reads can be added).
AUDIO_EXTENSIONS = frozenset(
    ".wav .flac .ogg .oga .opus .mp3 .m4a .mp4 .aac .webm .mka .mkv .aif .aiff .au .wma .wv .caf".split()
)
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
        from pipeline.shards import segment_key

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


def parse_segments_csv(
    path: str,
    vocabulary: LabelVocabulary,
    *,
    skip_bad_rows: bool = False,
    allow_any_id: bool = False,
) -> list[Segment]:
    """Segments of one CSV in file order. Errors name the file and the 1-based line."""
    text = _read_text(path)
    segments = []
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    line = 0
    for row in reader:
        line_start = line + 1
        line = reader.line_num
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if row[0].strip().lower() in ("ytid", "youtube_id", "id"):
            continue  # a plain header row
        try:
            segments.append(_parse_row(row, vocabulary, allow_any_id))
        except SegmentError as error:
            message = f"{path}, line {line_start}: {error}"
            if not skip_bad_rows:
                raise SegmentError(message) from None
            log.warning("skipping %s", message)
    return segments


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
    import tensorflow as tf  # gfile reads gs:// as well as local paths

    if not tf.io.gfile.exists(path):
        raise SegmentError(f"{path}: no such file")
    with tf.io.gfile.GFile(path, "rb") as handle:
        data = handle.read()
    return data.decode("utf-8-sig")


def file_sha256(path: str) -> str:
    import tensorflow as tf

    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Local audio directories
# --------------------------------------------------------------------------------------------


def list_audio_files(directory: str) -> list[str]:
    """Audio files under ``directory`` (recursively), as sorted POSIX paths relative to it."""
    root = Path(directory)
    if not root.is_dir():
        raise SegmentError(f"--audio-dir {directory}: not a directory")
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in files:
            if Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                found.append((Path(folder) / name).relative_to(root).as_posix())
    return sorted(found)


def directory_segments(directory: str) -> list[Segment]:
    """Unlabelled segments, one per audio file: whole files, chunked later. The id is the path
    relative to the directory (a path-based id, DESIGN §2)."""
    return [
        Segment(ytid=relative, start_s=0.0, end_s=None, path=str(Path(directory) / relative), precut=True)
        for relative in list_audio_files(directory)
    ]


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
    for relative in list_audio_files(directory):
        stem = Path(relative).stem
        for candidate, rest in ((stem[:11], stem[11:]), (stem[1:12], stem[12:]) if stem.startswith("Y") else ("", "")):
            if candidate not in wanted:
                continue
            path = str(Path(directory) / relative)
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
