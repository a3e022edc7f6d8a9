"""Shards → batches of float16 log-mels for the device.

``open_shards`` reads ``manifest.json``, refuses a directory whose spectrogram settings, example
shape or format version differ from what the trainer expects (saying what differs), and checks
every shard's record framing, so a truncated copy is reported *by file name* before training
starts rather than as an anonymous ``DataLossError`` hours in. ``--skip-corrupt`` drops such
files instead and counts them.

``train_stream`` is the host's whole job: list of files (shuffled per epoch) → this input
pipeline's share → parallel interleave of TFRecord readers → shuffle (in blocks, per-epoch keys)
→ batch → parse the batch
(``parse_example`` + ``decode_raw`` to float16) → prefetch. Normalisation and views happen on the
device, inside the compiled step.

Resuming: in deterministic mode the stream is a pure function of (seed, epoch), so a run resumed
at step k rebuilds it and skips the records of the first k steps (cheap: raw records, no parse)
and continues exactly where the uninterrupted run would be. Otherwise it starts the epoch of step
k afresh with a reshuffled order: skipping up to an epoch of data (hundreds of GB for AudioSet)
on every restart is not worth exactness.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Any

import tensorflow as tf

from audioshards import shards as shard_format, tfrecord
from audioshards.spectrogram import SpectrogramConfig
from training import rng


class ShardProblem(Exception):
    """A shard directory cannot be used as it is (the message says why and what to do)."""


class CorruptShard(ShardProblem):
    """A shard file is missing, truncated or unreadable."""


@dataclasses.dataclass(frozen=True)
class ShardSet:
    """The usable shard files of one split and what the trainer needs from the manifest."""

    directory: str
    split: str
    files: tuple[str, ...]  # full paths, manifest order, non-empty shards only
    examples: tuple[int, ...]  # per file
    shape: tuple[int, int, int]
    band_mean: tuple[float, ...]
    band_std: tuple[float, ...]
    spectrogram: dict[str, Any]
    skipped: tuple[str, ...] = ()  # "file: reason" of shards left out by --skip-corrupt
    skipped_examples: int = 0

    @property
    def total(self) -> int:
        return sum(self.examples)


def open_shards(directory: str, split: str = "train", spectrogram: SpectrogramConfig = SpectrogramConfig(),
                skip_corrupt: bool = False, verify: bool = True) -> ShardSet:
    """Check a shard directory against what the trainer expects and list its usable files."""
    directory = directory.rstrip("/")
    manifest = shard_format.read_manifest(directory)
    if manifest is None:
        raise ShardProblem(f"no {shard_format.MANIFEST} in {directory}: is it a shard directory? "
                                "Build one with `make shards` (python -m pipeline).")
    shard_format.check_compatible(manifest, spectrogram, directory=directory)
    example = manifest.get("example", {})
    if example.get("dtype", "float16") != "float16":
        raise shard_format.ShardDirectoryMismatch(
            f"{directory} stores {example.get('dtype')} examples; the trainer reads float16")
    info = manifest.get("splits", {}).get(split)
    if not info:
        raise ShardProblem(f"{directory}/{shard_format.MANIFEST} has no {split!r} split "
                         f"(it has: {', '.join(manifest.get('splits', {})) or 'none'}); build it with --split {split}")
    mean, std = info.get("band_mean") or [], info.get("band_std") or []
    if len(mean) != spectrogram.n_mels or len(std) != spectrogram.n_mels:
        raise ShardProblem(f"{directory}: the {split} split has no per-band statistics for {spectrogram.n_mels} "
                         f"bands (band_mean has {len(mean)}, band_std {len(std)}); it may be empty or unfinished")

    listed = [(f"{directory}/{shard['file']}", int(shard["examples"])) for shard in info["shards"]]
    problems: dict[str, str] = {}
    if verify:
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            for (path, expected), problem in zip(listed, pool.map(lambda item: verify_shard(*item), listed)):
                if problem:
                    problems[path] = problem
    if problems and not skip_corrupt:
        lines = "\n  ".join(f"{path}: {problem}" for path, problem in problems.items())
        raise CorruptShard(f"{len(problems)} of {len(listed)} {split} shards are unusable:\n  {lines}\n"
                           "Rebuild them (re-run the pipeline with the same --out), or pass --skip-corrupt "
                           "to train without them.")
    usable = [(path, count) for path, count in listed if path not in problems and count > 0]
    if not usable:
        raise CorruptShard(f"{directory}: no usable {split} examples")
    return ShardSet(
        directory=directory, split=split,
        files=tuple(path for path, _ in usable), examples=tuple(count for _, count in usable),
        shape=tuple(example["shape"]), band_mean=tuple(mean), band_std=tuple(std),
        spectrogram=manifest["spectrogram"],
        skipped=tuple(f"{path}: {problem}" for path, problem in problems.items()),
        skipped_examples=sum(count for path, count in listed if path in problems),
    )


# --------------------------------------------------------------------------------------------
# Shard framing check
# --------------------------------------------------------------------------------------------


def verify_shard(path: str, expected_examples: int | None = None) -> str | None:
    """None if the TFRecord framing of `path` is whole, else what is wrong.

    Walks the record headers (length, masked CRC of the length) and seeks over each payload, so it
    reads a few bytes per record: cheap even for 200 MB shards on a remote file system. Payload
    checksums are left to the reader.
    """
    if not tf.io.gfile.exists(path):
        return "missing"
    size = tf.io.gfile.stat(path).length
    records, offset = 0, 0
    with tf.io.gfile.GFile(path, "rb") as handle:
        while offset < size:
            header = handle.read(tfrecord.HEADER_BYTES)
            if len(header) < tfrecord.HEADER_BYTES:
                return f"truncated: a record header at byte {offset} is cut off (file has {size} bytes)"
            try:
                length = tfrecord.read_length(header, offset, records)
            except tfrecord.RecordError as error:
                return str(error)
            end = offset + tfrecord.HEADER_BYTES + length + tfrecord.FOOTER_BYTES
            if end > size:
                return (f"truncated: record {records} at byte {offset} needs {end} bytes, the file has {size}")
            handle.seek(end)
            offset, records = end, records + 1
    if expected_examples is not None and records != expected_examples:
        return f"has {records} records, the manifest says {expected_examples}"
    return None


def find_unreadable(files: tuple[str, ...] | list[str]) -> list[str]:
    """"file: error" for every shard whose records cannot all be read (payload checksums included).

    Reads everything: for the error path, when the stream has already failed."""
    bad = []
    for path in files:
        try:
            for _ in tf.data.TFRecordDataset(path):
                pass
        except tf.errors.OpError as error:
            bad.append(f"{path}: {error.message}")
    return bad


# --------------------------------------------------------------------------------------------
# The stream
# --------------------------------------------------------------------------------------------


def parse_batch(records: tf.Tensor, shape: tuple[int, int, int]) -> tf.Tensor:
    """[B] serialised examples → [B, mel, frames, channels] float16 (no cast: the device does it)."""
    spec = {"logmel": shard_format.feature_spec()["logmel"]}
    features = tf.io.parse_example(records, spec)
    logmel = tf.io.decode_raw(features["logmel"], tf.float16, little_endian=True)
    return tf.reshape(logmel, [tf.shape(records)[0], *shape])


def train_stream(
    shards: ShardSet,
    per_replica_batch: int,
    *,
    seed: int = 0,
    shuffle_buffer: int = 1024,
    deterministic: bool = False,
    skip_corrupt: bool = False,
    start_step: int = 0,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Endless per-replica batches [per_replica_batch, mel, frames, channels] float16."""
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline = input_context.input_pipeline_id if input_context else 0
    replicas_here = (input_context.num_replicas_in_sync // pipelines) if input_context else 1
    # File-level sharding: each input pipeline (host) reads its own files, no example twice.
    files = list(shards.files[pipeline::pipelines])
    examples = int(sum(shards.examples[pipeline::pipelines]))
    if not files:
        raise ShardProblem(f"{len(shards.files)} shard files cannot feed {pipelines} input pipelines: "
                         "build the shards with at least one file per host (--num-shards)")
    records_per_step = per_replica_batch * replicas_here
    consumed = start_step * records_per_step
    start_epoch, skip = divmod(consumed, examples)
    salt = 0 if deterministic else start_step  # a fresh order after a non-deterministic restart

    # tf.data would run these functions through AutoGraph; they have no control flow on tensors.
    @tf.autograph.experimental.do_not_convert
    def epoch(number: tf.Tensor) -> tf.data.Dataset:
        # The file order is a stateless function of (seed, epoch); tf.data's own shuffle takes only a
        # Python seed, so it cannot be told which epoch it is in.
        order = tf.argsort(rng.uniform(rng.seed(seed, salt, number), [len(files)]))
        names = tf.data.Dataset.from_tensor_slices(tf.gather(tf.constant(files), order))

        @tf.autograph.experimental.do_not_convert
        def read(name: tf.Tensor) -> tf.data.Dataset:
            dataset = tf.data.TFRecordDataset(name, buffer_size=4 << 20)
            # A payload checksum error mid-file (the header walk cannot see those) ends that file.
            return dataset.ignore_errors(log_warning=True) if skip_corrupt else dataset

        records = names.interleave(read, cycle_length=min(len(files), 8), block_length=1,
                                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
        # Shuffle in blocks of `shuffle_buffer` records, each permuted by keys drawn from (seed, epoch,
        # block): Dataset.shuffle takes only a Python seed, so with it every epoch would repeat one
        # permutation pattern, and a resumed run could not rebuild the epoch it stopped in.
        blocks = records.batch(shuffle_buffer).enumerate()
        return blocks.map(tf.autograph.experimental.do_not_convert(lambda index, block: tf.gather(
            block, tf.argsort(rng.uniform(rng.seed(seed, salt, number, index), tf.shape(block)))))).unbatch()

    stream = tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch)
    if deterministic and skip:
        stream = stream.skip(skip)
    stream = stream.batch(per_replica_batch, drop_remainder=True)
    stream = stream.map(tf.autograph.experimental.do_not_convert(lambda records: parse_batch(records, shards.shape)),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    options = tf.data.Options()
    options.deterministic = deterministic
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF  # done above
    return stream.prefetch(tf.data.AUTOTUNE).with_options(options)
