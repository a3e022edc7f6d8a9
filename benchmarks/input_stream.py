"""Examples per second delivered by the trainer's input stream, against its raw limit.

Writes shards of synthetic log-mels (the reader's speed does not depend on their content) and,
in one run on the same files, measures:

- ``train_stream``: the trainer's tf.data pipeline (file shuffle, parallel interleave, shuffle,
  batch, parse, prefetch), as ``python -m training train`` uses it;
- ``raw_limit``: ``TFRecordDataset`` + ``batch`` + ``parse_example`` + ``decode_raw`` of the same
  files and nothing else;
- ``npy_per_clip``: the same examples as one ``.npy`` file per clip, as pipelines that
  precompute spectrograms store them, read with ``np.load`` through ``tf.data``.

Files are read once before timing, so all three read from the page cache. The three are timed in
turn, `--rounds` times, and each reports its best round. Prints one JSON object:

    python -m benchmarks.input_stream [--examples 1024] [--batch 64] [--threads 1] [--rounds 3]

``--threads 1`` (the default) limits tf.data to one core, to state how many accelerators one host
core can feed.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from audioshards import shards, storage
from audioshards.spectrogram import DEFAULT_CONFIG
from training.data import open_shards, parse_batch, train_stream

SHAPE = DEFAULT_CONFIG.shape


def write_data(directory: Path, examples: int, num_shards: int, npy_copy: bool = True) -> None:
    """A train split of synthetic examples with the pipeline's shard writer; with `npy_copy`, each
    example also as ``npy/<ytid>.npy``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    per_shard: dict[int, list[bytes]] = {index: [] for index in range(num_shards)}
    npy = directory / "npy"
    npy.mkdir(exist_ok=True)
    stats = shards.BandStats.empty(SHAPE[0])
    for index in range(examples):
        logmel = (rng.standard_normal(SHAPE) * 10 - 50).astype(np.float16)
        ytid = f"bench{index:06d}"
        example = shards.ClipExample(shards.clip_id(ytid, 0.0, 0), ytid, 0.0, 10.0, 0, (), logmel)
        per_shard[index % num_shards].append(example.serialize())
        if npy_copy:
            np.save(npy / f"{ytid}.npy", logmel)
        if index < 16:
            stats.add_example(logmel)
    manifest = shards.new_manifest(DEFAULT_CONFIG, [], {})
    entries = []
    for index, records in per_shard.items():
        name = shards.shard_file_name("train", index, num_shards)
        entries.append({"file": name, "examples": shards.write_shard(str(directory / name), records)})
    mean, std = stats.mean_std()
    manifest["splits"]["train"] = {"shards": entries, "examples": examples, "band_mean": mean, "band_std": std,
                                   "failures": {}}
    storage.write_json_atomic(shards.manifest_path(str(directory)), manifest)


def examples_per_second(iterator, batches: int, batch: int) -> float:
    """Examples/s over `batches` batches of a running iterator, after a warm-up of 3 batches
    (threads, buffers, autotuning on the first round)."""
    for _ in range(3):
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - started)


def with_threads(dataset: tf.data.Dataset, threads: int) -> tf.data.Dataset:
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    return dataset.with_options(options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1024)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="tf.data threads (0: TensorFlow's default)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over the three readers in turn; each reports its best round (a round "
                             "is about a second: one of them can be hit by anything else the machine does)")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "mygo-bench-input"))
    args = parser.parse_args()
    directory = Path(args.workdir)
    if not (directory / "manifest.json").exists():
        write_data(directory, args.examples, args.shards)
    shard_set = open_shards(str(directory))
    batches = 2 * args.examples // args.batch  # two passes over the files

    stream = train_stream(shard_set, args.batch, shuffle_buffer=256)
    raw = (tf.data.TFRecordDataset(list(shard_set.files)).repeat().batch(args.batch, drop_remainder=True)
           .map(lambda records: parse_batch(records, shard_set.shape)))
    npy_files = sorted(str(p) for p in (directory / "npy").glob("*.npy"))
    npy = (tf.data.Dataset.from_tensor_slices(npy_files).repeat()
           .map(lambda path: tf.numpy_function(lambda p: np.load(p.decode()), [path], tf.float16))
           .batch(args.batch, drop_remainder=True))
    if args.threads:
        stream, raw, npy = (with_threads(d, args.threads) for d in (stream, raw, npy))
    for path in shard_set.files:  # into the page cache
        Path(path).read_bytes()
    iterators = {"train_stream": iter(stream), "raw_limit": iter(raw), "npy_per_clip": iter(npy)}
    rounds = [{name: examples_per_second(iterator, batches, args.batch) for name, iterator in iterators.items()}
              for _ in range(args.rounds)]
    results = {name: max(measured[name] for measured in rounds) for name in iterators}
    print(json.dumps({
        "benchmark": "input_stream",
        "examples": args.examples, "batch": args.batch, "tf_data_threads": args.threads or "default",
        "rounds": args.rounds,
        **{f"{name}_examples_per_s": round(value, 1) for name, value in results.items()},
        "train_stream_fraction_of_raw_limit": round(results["train_stream"] / results["raw_limit"], 3),
        "train_stream_over_npy_per_clip": round(results["train_stream"] / results["npy_per_clip"], 2),
    }))


if __name__ == "__main__":
    main()
