"""The shard format: the contract between the pipeline and the trainer.

Everything that names, places, serialises or describes a shard lives here, so the writer (the
Beam job) and the readers (the trainer, the probe, the tests) cannot drift apart.

Decisions:
- An example's shard is a hash of its *segment* key ``<YTID>_<start ms>`` (its ``clip_id`` minus
  the chunk suffix), not of the full ``clip_id``: the chunk count is known only after decoding,
  and keeping all chunks of one segment in one shard lets the job group segments by shard before
  any audio is fetched (bounded memory). The hash is BLAKE2b, stable across processes
  and Python versions (``hash()`` is salted per process).
- Files go through :mod:`audioshards.storage` (``tf.io.gfile`` for ``gs://`` and other remote file
  systems) and are framed and encoded by :mod:`audioshards.tfrecord`, without importing TensorFlow.
- A shard is written to ``<name>.tmp-<random>`` and renamed, so readers never see half a shard.
- Two jobs (train and eval) may share one directory at the same time: each split's manifest entry
  is first written to its own ``manifest-<split>.json``, and ``manifest.json`` is then rebuilt from
  those files until it is stable (see :func:`update_manifest`); :func:`read_manifest` overlays them.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from audioshards import storage, tfrecord
from audioshards.spectrogram import FORMAT_VERSION, SpectrogramConfig
from audioshards.storage import write_json_atomic

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
SPLITS = ("train", "eval")
#: Serialised size of one example (float16 log-mel plus a few hundred bytes of metadata); used to
#: pick a shard count. About 240 KB per clip.
EXAMPLE_BYTES = 240_640 + 200
TARGET_SHARD_BYTES = 200_000_000  # aim at the middle of 100-300 MB per shard
_SHARD_NAME = re.compile(r"^(?P<split>[a-z]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.tfrecord$")


class ShardDirectoryMismatch(ValueError):
    """A shard directory was built with other settings than the ones asked for."""


class ManifestError(ValueError):
    """A manifest file that cannot be read: the message names the file and what is wrong."""


def shard_file_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def failures_file_name(split: str) -> str:
    return f"failures-{split}.jsonl"


def parse_shard_file_name(name: str) -> tuple[str, int, int] | None:
    """(split, index, count) of a shard file name, or None for any other file."""
    match = _SHARD_NAME.match(name)
    if match is None:
        return None
    return match["split"], int(match["index"]), int(match["count"])


def default_num_shards(expected_examples: int) -> int:
    """Shard count that puts about TARGET_SHARD_BYTES in each shard (at least one)."""
    return max(1, math.ceil(expected_examples * EXAMPLE_BYTES / TARGET_SHARD_BYTES))


def segment_key(ytid: str, start_s: float) -> str:
    return f"{ytid}_{int(round(start_s * 1000))}"


def clip_id(ytid: str, start_s: float, chunk: int) -> str:
    """``<YTID>_<start ms>_<chunk index>``: unique and stable."""
    return f"{segment_key(ytid, start_s)}_{chunk}"


def shard_index(key: str, num_shards: int) -> int:
    """Deterministic shard of a segment key, the same in every process and on every machine."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % num_shards


# --------------------------------------------------------------------------------------------
# Examples
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipExample:
    """One 10 s clip as stored: the log-mel and where it came from."""

    clip_id: str
    ytid: str
    start_s: float
    end_s: float
    chunk: int
    labels: tuple[int, ...]
    logmel: np.ndarray  # [mel, frames, channels] float16

    def serialize(self) -> bytes:
        """The ``tf.train.Example`` record (deterministic bytes: a re-run writes identical shards)."""
        example = tfrecord.example_message()()
        feature = example.features.feature
        feature["logmel"].bytes_list.value.append(np.ascontiguousarray(self.logmel, dtype="<f2").tobytes())
        feature["clip_id"].bytes_list.value.append(self.clip_id.encode("utf-8"))
        feature["ytid"].bytes_list.value.append(self.ytid.encode("utf-8"))
        feature["start_s"].float_list.value.append(self.start_s)
        feature["end_s"].float_list.value.append(self.end_s)
        feature["chunk"].int64_list.value.append(self.chunk)
        feature["labels"].int64_list.value.extend(self.labels)
        return example.SerializeToString(deterministic=True)

    @classmethod
    def parse(cls, record: bytes, shape: Sequence[int]) -> "ClipExample":
        """Decode one serialised example (for tests, tools and the probe; the trainer parses
        batches in tf.data instead)."""
        feature = tfrecord.example_message().FromString(record).features.feature
        logmel = np.frombuffer(feature["logmel"].bytes_list.value[0], dtype="<f2").reshape(shape)
        return cls(
            clip_id=feature["clip_id"].bytes_list.value[0].decode("utf-8"),
            ytid=feature["ytid"].bytes_list.value[0].decode("utf-8"),
            start_s=feature["start_s"].float_list.value[0],
            end_s=feature["end_s"].float_list.value[0],
            chunk=int(feature["chunk"].int64_list.value[0]),
            labels=tuple(int(v) for v in feature["labels"].int64_list.value),
            logmel=logmel,
        )


def feature_spec() -> dict[str, Any]:
    """``tf.io.parse_example`` spec of a shard record."""
    import tensorflow as tf

    return {
        "logmel": tf.io.FixedLenFeature([], tf.string),
        "clip_id": tf.io.FixedLenFeature([], tf.string),
        "ytid": tf.io.FixedLenFeature([], tf.string),
        "start_s": tf.io.FixedLenFeature([], tf.float32),
        "end_s": tf.io.FixedLenFeature([], tf.float32),
        "chunk": tf.io.FixedLenFeature([], tf.int64),
        "labels": tf.io.VarLenFeature(tf.int64),
    }


def read_examples(path: str, shape: Sequence[int]) -> list[ClipExample]:
    """All examples of one shard file, in file order (checksums verified: RecordError)."""
    with storage.open_read(path) as handle:
        return [ClipExample.parse(record, shape) for record in tfrecord.iter_records(handle)]


def write_shard(path: str, records: Iterable[bytes]) -> int:
    """Write serialised records to ``path`` atomically; returns the record count."""
    count = 0
    with storage.atomic_target(path) as temporary, storage.open_write(temporary) as handle:
        for record in records:
            handle.write(tfrecord.frame(record))
            count += 1
    return count


# --------------------------------------------------------------------------------------------
# Per-band statistics
# --------------------------------------------------------------------------------------------


@dataclass
class BandStats:
    """Running per-mel-band sums of stored dB values, in float64.

    Sums are added in a fixed order (examples sorted within a shard, shards by index), so the
    mean and standard deviation come out bit-identical on every run.
    """

    count: int
    total: np.ndarray  # [mel] float64
    total_squares: np.ndarray  # [mel] float64

    @classmethod
    def empty(cls, bands: int) -> "BandStats":
        return cls(0, np.zeros(bands), np.zeros(bands))

    def add_example(self, logmel: np.ndarray) -> None:
        values = np.asarray(logmel, dtype=np.float64).reshape(logmel.shape[0], -1)
        self.count += values.shape[1]
        self.total += values.sum(axis=1)
        self.total_squares += np.square(values).sum(axis=1)

    def merge(self, other: "BandStats") -> None:
        self.count += other.count
        self.total += other.total
        self.total_squares += other.total_squares

    def mean_std(self) -> tuple[list[float], list[float]]:
        if self.count == 0:
            return [], []
        mean = self.total / self.count
        variance = np.maximum(self.total_squares / self.count - np.square(mean), 0.0)
        return mean.tolist(), np.sqrt(variance).tolist()


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


def manifest_path(directory: str) -> str:
    return f"{directory.rstrip('/')}/{MANIFEST}"


def split_manifest_path(directory: str, split: str) -> str:
    """``manifest-<split>.json``: the entry one split's job wrote, merged into manifest.json."""
    return f"{directory.rstrip('/')}/manifest-{split}.json"


def _load_manifest_file(path: str) -> dict[str, Any] | None:
    """A manifest file as a dict, None if it does not exist; ManifestError names the file and
    the problem (a JSON decode error alone names neither)."""
    if not storage.exists(path):
        return None
    try:
        value = json.loads(storage.read_bytes(path).decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ManifestError(f"{path}: not UTF-8 text ({error}); delete it and run the job of each split again") from None
    except json.JSONDecodeError as error:
        raise ManifestError(f"{path}: not valid JSON ({error}); it is damaged (truncated or edited): delete it and "
                            "run the job of each split again") from None
    if not isinstance(value, dict) or not isinstance(value.get("splits", {}), dict):
        raise ManifestError(f"{path}: not a shard manifest (a JSON object with a 'splits' object expected)")
    for split, entry in value.get("splits", {}).items():
        if not isinstance(entry, dict):
            raise ManifestError(f"{path}: split {split!r} is {type(entry).__name__}, not an object")
    return value


def read_manifest(directory: str) -> dict[str, Any] | None:
    """The directory's manifest: manifest.json, where a ``manifest-<split>.json`` it was not
    rebuilt from (a job killed in between) replaces that split's entry. None for a directory
    without a manifest; ManifestError for a damaged one."""
    manifest = _load_manifest_file(manifest_path(directory))
    for split, part in _split_files(directory).items():
        if manifest is None:
            manifest = {key: value for key, value in part.items() if key not in ("splits", SPLIT_FILE_TOKEN)}
            manifest["splits"] = {}
        _merge_part(manifest, split, part)
    return manifest


#: Key of a split file's version: a random token, which manifest.json records (under
#: ``split_files``) for each split file it was built from.
SPLIT_FILE_TOKEN = "written"


def _merge_part(manifest: dict[str, Any], split: str, part: dict[str, Any]) -> None:
    """Take ``split``'s entry from its split file, unless manifest.json was built from this very
    version of it: then manifest.json's entry stands, as it is (an entry edited by hand, as the
    trainer's tests do, stays edited)."""
    built_from = manifest.setdefault("split_files", {})
    if not isinstance(built_from, dict):
        raise ManifestError(f"manifest.json: 'split_files' is {type(built_from).__name__}, not an object")
    token = part.get(SPLIT_FILE_TOKEN)
    if token is None or built_from.get(split) != token:
        manifest["splits"][split] = part["splits"][split]
        built_from[split] = token


def _split_files(directory: str) -> dict[str, dict[str, Any]]:
    """{split: contents} of the split files present."""
    parts = {}
    for split in SPLITS:
        part = _load_manifest_file(split_manifest_path(directory, split))
        if part is not None and isinstance(part["splits"].get(split), dict):
            parts[split] = part
    return parts


#: Rounds of :func:`update_manifest` before it gives up on a stable manifest.json (each round is
#: a few small reads and one write; two jobs finish within one round of each other).
MANIFEST_ROUNDS = 20


def update_manifest(directory: str, split: str, base: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """Record ``split``'s entry, safely while the other split's job does the same.

    Why not a lock or a generation precondition: ``tf.io.gfile`` (local disk and ``gs://`` alike)
    offers neither, and a lock left by a killed job would need a time-out. Instead every writer
    owns one file, ``manifest-<split>.json`` (written atomically; no one else writes it), and
    ``manifest.json`` is a merge of those files that every writer rebuilds: read the split files,
    write the merge, read the split files again, and repeat until they did not change in between.
    The last write of manifest.json is then complete: a split file changed before that writer's
    first read is in its merge, one changed before its second read would have made it repeat, and
    one changed after it is followed by that split's own (later) write. Each split file carries a
    random token, and manifest.json records (``split_files``) the tokens it was built from, so a
    reader can tell a split file newer than manifest.json's entry without comparing clocks. A job
    killed in between leaves manifest.json one entry behind, which :func:`read_manifest` (the
    trainer's and the probe's reader) covers by taking that entry from the split file; readers of manifest.json alone see it
    complete once both jobs have finished. ``base`` is the directory's fixed part
    (:func:`new_manifest`), used when manifest.json does not exist yet.
    """
    out = directory.rstrip("/")
    part = {**base, "splits": {split: entry}, SPLIT_FILE_TOKEN: uuid.uuid4().hex}
    write_json_atomic(split_manifest_path(out, split), part, tag=split)
    for _ in range(MANIFEST_ROUNDS):
        parts = _split_files(out)
        current = _load_manifest_file(manifest_path(out)) or base
        merged = {**current, "splits": dict(current.get("splits", {})),
                  "split_files": dict(current.get("split_files", {}))}
        for name, found in parts.items():
            _merge_part(merged, name, found)
        write_json_atomic(manifest_path(out), merged, tag=split)
        if _split_files(out) == parts:
            return merged
    log.warning("%s kept changing while %s was written; readers of the directory still see every split (from "
                "manifest-<split>.json)", manifest_path(out), split)
    return merged


def is_own_debris(name: str, split: str) -> bool:
    """A temporary file of ``split``'s job (one a killed run of it may have left): its shards,
    failures file, manifest files and TFDS metadata (any temporary tagged with the split). Another
    split's temporaries are never this split's."""
    return ".tmp-" in name and (
        name.startswith((f"{split}-", f"{failures_file_name(split)}.tmp-", f"manifest-{split}.json.tmp-"))
        or f".tmp-{split}-" in name
    )


def new_manifest(config: SpectrogramConfig, labels: list[dict[str, Any]], clips: dict[str, Any]) -> dict[str, Any]:
    """The part of a manifest fixed when a directory is first used: settings shared by all splits."""
    return {
        "format_version": FORMAT_VERSION,
        "spectrogram": config.to_dict(),
        "example": {"feature": "logmel", "shape": list(config.shape), "dtype": config.dtype, "byte_order": "little"},
        "clips": clips,
        "labels": labels,
        "splits": {},
    }


def check_compatible(
    manifest: dict[str, Any],
    config: SpectrogramConfig,
    *,
    directory: str,
    labels: list[dict[str, Any]] | None = None,
    clips: dict[str, Any] | None = None,
) -> None:
    """Refuse a shard directory built with other settings, saying what differs."""
    problems = []
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        problems.append(f"format_version: {version!r} in the directory, {FORMAT_VERSION!r} expected")
    try:
        theirs = SpectrogramConfig.from_dict(manifest.get("spectrogram", {}))
        problems += [f"spectrogram {line}" for line in theirs.differences(config)]
    except (TypeError, ValueError) as error:
        problems.append(f"spectrogram settings unreadable: {error}")
    shape = manifest.get("example", {}).get("shape")
    if shape != list(config.shape):
        problems.append(f"example shape: {shape} in the directory, {list(config.shape)} expected")
    if labels is not None and manifest.get("labels") != labels:
        problems.append("label vocabulary differs (another class_labels_indices.csv)")
    if clips is not None and manifest.get("clips") != clips:
        problems.append(f"clip settings: {manifest.get('clips')} in the directory, {clips} asked for")
    if problems:
        raise ShardDirectoryMismatch(
            f"{directory} was built with other settings and is not mixed with these:\n  "
            + "\n  ".join(problems)
            + "\nUse another --out directory, or delete this one to rebuild it."
        )


def utc_now() -> str:
    """Now, ISO-8601 UTC to the second: the time stamps of manifests and failure records."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
