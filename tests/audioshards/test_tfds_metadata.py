"""TFDS metadata beside the manifest: tfds.builder_from_directory loads a shard directory as it is."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audioshards import shards, tfds_metadata
from audioshards.audio import ClipSettings
from audioshards.spectrogram import SpectrogramConfig

tfds = pytest.importorskip("tensorflow_datasets")

CONFIG = SpectrogramConfig()
LABELS = [{"index": 0, "mid": "/m/09x0r", "display_name": "Speech"},
          {"index": 1, "mid": "/m/04rlf", "display_name": "Music"},
          {"index": 2, "mid": "/m/0jbk", "display_name": "Animal"}]
#: Examples per shard of each split, as the two jobs would write them (an empty shard included).
LAYOUT = {"train": [2, 0, 1], "eval": [1]}


def clip(split: str, number: int) -> shards.ClipExample:
    ytid = f"{split[:2]}{number:09d}"
    logmel = np.random.default_rng(number).normal(-40, 10, CONFIG.shape).astype(np.float16)
    labels = tuple(range(number % 4))  # none, one, two or three labels
    return shards.ClipExample(clip_id=shards.clip_id(ytid, 2.5 * number, number % 2), ytid=ytid,
                              start_s=2.5 * number, end_s=2.5 * number + 10, chunk=number % 2, labels=labels,
                              logmel=logmel)


def write_split(directory: str, split: str) -> list[shards.ClipExample]:
    """One split's shards and manifest entry, as pipeline/job.py's WriteShard and write_manifest do."""
    written, number, entries = [], 0, []
    counts = LAYOUT[split]
    for index, count in enumerate(counts):
        examples = [clip(split, number + k) for k in range(count)]
        number += count
        name = shards.shard_file_name(split, index, len(counts))
        shards.write_shard(f"{directory}/{name}", [example.serialize() for example in examples])
        entries.append({"file": name, "examples": count, "segments": count})
        written += examples
    base = shards.new_manifest(CONFIG, LABELS, ClipSettings().to_dict())
    entry = {"shards": entries, "examples": len(written), "segments": len(written)}
    shards.update_manifest(directory, split, base, entry)
    return written


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("shards"))
    written = {}
    for split in LAYOUT:  # two jobs, one after the other; each rewrites the metadata from the manifest
        written[split] = write_split(directory, split)
        tfds_metadata.write_metadata(directory, shards.read_manifest(directory), tag=split)
    return directory, written


def test_metadata_describes_both_splits_and_their_shard_lengths(shard_dir):
    directory, _ = shard_dir
    info = tfds.builder_from_directory(directory).info
    assert sorted(info.splits) == ["eval", "train"]
    for split, counts in LAYOUT.items():
        assert info.splits[split].num_examples == sum(counts)
        assert info.splits[split].shard_lengths == counts
    assert info.features["labels"].feature.names == ["Speech", "Music", "Animal"]
    described = json.loads(open(f"{directory}/dataset_info.json").read())
    assert {split["filepathTemplate"] for split in described["splits"]} == {"{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}"}


def test_tfds_reads_the_shards_with_their_own_file_names_and_values(shard_dir):
    directory, written = shard_dir
    builder = tfds.builder_from_directory(directory)
    for split, expected in written.items():
        read = list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
        assert len(read) == len(expected)
        for example, clip_example in zip(read, expected):  # shards in index order, records in file order
            assert example["logmel"].dtype == np.float16 and example["logmel"].shape == CONFIG.shape
            np.testing.assert_array_equal(example["logmel"], clip_example.logmel)
            assert example["labels"].dtype == np.int64
            assert tuple(example["labels"]) == clip_example.labels
            assert example["clip_id"].decode() == clip_example.clip_id
            assert example["ytid"].decode() == clip_example.ytid
            assert example["start_s"] == pytest.approx(clip_example.start_s)
            assert example["end_s"] == pytest.approx(clip_example.end_s)
            assert example["chunk"] == clip_example.chunk


def test_a_split_the_manifest_lists_wrongly_is_left_out(tmp_path):
    manifest = shards.new_manifest(CONFIG, LABELS, ClipSettings().to_dict())
    manifest["splits"] = {"train": {"shards": [{"file": "train-00000-of-00001.tfrecord", "examples": 1}]},
                          "eval": {"shards": [{"file": "eval-00001-of-00002.tfrecord", "examples": 1}]}}
    info = tfds_metadata.dataset_info(str(tmp_path), manifest)
    assert list(info.splits) == ["train"]


def test_writing_the_metadata_imports_no_tensorflow(tmp_path):
    # The job writes it at the end of each split: TFDS's classes must not pull TensorFlow in.
    code = ("import sys, json\nfrom audioshards import shards, tfds_metadata\nfrom audioshards.audio import ClipSettings\n"
            "from audioshards.spectrogram import SpectrogramConfig\n"
            f"m = shards.new_manifest(SpectrogramConfig(), {LABELS!r}, ClipSettings().to_dict())\n"
            "m['splits'] = {'train': {'shards': [{'file': 'train-00000-of-00001.tfrecord', 'examples': 1}]}}\n"
            f"tfds_metadata.write_metadata({str(tmp_path)!r}, m)\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parent.parent.parent)
    assert result.returncode == 0, result.stderr
    assert {"dataset_info.json", "features.json", "labels.labels.txt"} <= {p.name for p in tmp_path.iterdir()}


def test_a_writer_with_an_older_manifest_rewrites_from_the_newer_one(shard_dir):
    # The train job built its metadata before the eval job's entry reached manifest.json: the
    # manifest read back after writing has another split, so the files are rebuilt from it.
    directory, _ = shard_dir
    stale = shards.read_manifest(directory)
    stale["splits"] = {"train": stale["splits"]["train"]}
    used = tfds_metadata.write_metadata(directory, stale, tag="train")
    assert sorted(used["splits"]) == ["eval", "train"]
    assert sorted(tfds.builder_from_directory(directory).info.splits) == ["eval", "train"]
