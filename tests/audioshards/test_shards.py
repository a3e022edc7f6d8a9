"""audioshards.shards, the shard format: names, placement, band statistics and the manifest's checks.

(The manifest written by two jobs at once, and damaged manifests met by the job, are tested with
the job in tests/pipeline/test_manifest.py; the record encoding in test_tfrecord.py.)"""
from __future__ import annotations

import numpy as np
import pytest

from audioshards import shards
from audioshards.spectrogram import FORMAT_VERSION, SpectrogramConfig

CONFIG = SpectrogramConfig()
LABELS = [{"index": 0, "mid": "/m/0", "display_name": "Zero"}]
CLIPS = {"min_remainder_s": 2.0}


def test_file_names_parse_back_and_other_files_are_not_shards():
    assert shards.shard_file_name("eval", 7, 12) == "eval-00007-of-00012.tfrecord"
    assert shards.parse_shard_file_name("eval-00007-of-00012.tfrecord") == ("eval", 7, 12)
    for other in ("manifest.json", "failures-train.jsonl", "train-00001-of-00003.tfrecord.tmp-train-ab12",
                  "train-1-of-3.tfrecord", "../train-00001-of-00003.tfrecord"):
        assert shards.parse_shard_file_name(other) is None
    assert shards.failures_file_name("train") == "failures-train.jsonl"


def test_ids_keys_and_placement_are_stable_and_keep_a_segments_chunks_together():
    assert shards.segment_key("abcdefghijk", 30.0) == "abcdefghijk_30000"
    assert shards.clip_id("abcdefghijk", 2.5, 3) == "abcdefghijk_2500_3"
    # BLAKE2b of the segment key: the same on every machine and Python version. Pinned: a change
    # would move segments between the shards of directories already written.
    assert shards.shard_index("abcdefghijk_30000", 1000) == 418
    assert shards.shard_index("--PJHxphWEs_30000", 100) == 41
    indices = [shards.shard_index(f"{i:011d}_0", 8) for i in range(4000)]
    assert set(indices) == set(range(8)) and max(np.bincount(indices)) < 600  # spread evenly
    assert shards.shard_index("abcdefghijk_30000", 1) == 0


def test_default_shard_count_aims_at_200_mb():
    assert shards.default_num_shards(0) == 1
    assert shards.default_num_shards(1) == 1
    per_shard = shards.TARGET_SHARD_BYTES // shards.EXAMPLE_BYTES
    assert shards.default_num_shards(per_shard) == 1 and shards.default_num_shards(per_shard + 1) == 2
    assert shards.default_num_shards(20_000) == 25  # AudioSet's balanced train: ~4.8 GB


def test_band_statistics_merge_in_order_to_numpys_mean_and_std():
    rng = np.random.default_rng(0)
    examples = [rng.normal(-50, 12, (4, 6, 2)).astype(np.float16) for _ in range(5)]
    first, second = shards.BandStats.empty(4), shards.BandStats.empty(4)
    for example in examples[:2]:
        first.add_example(example)
    for example in examples[2:]:
        second.add_example(example)
    first.merge(second)
    mean, std = first.mean_std()
    values = np.concatenate([e.astype(np.float64).reshape(4, -1) for e in examples], axis=1)
    np.testing.assert_allclose(mean, values.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(std, values.std(axis=1), rtol=1e-9)
    assert first.count == 5 * 6 * 2 and shards.BandStats.empty(4).mean_std() == ([], [])


def test_a_new_manifest_describes_the_format_and_a_compatible_one_passes():
    manifest = shards.new_manifest(CONFIG, LABELS, CLIPS)
    assert manifest["format_version"] == FORMAT_VERSION and manifest["splits"] == {}
    assert manifest["example"] == {"feature": "logmel", "shape": list(CONFIG.shape), "dtype": CONFIG.dtype,
                                   "byte_order": "little"}
    shards.check_compatible(manifest, CONFIG, directory="d", labels=LABELS, clips=CLIPS)


def test_another_setting_is_refused_saying_what_differs():
    manifest = shards.new_manifest(CONFIG, LABELS, CLIPS)
    other = SpectrogramConfig(n_mels=128)
    with pytest.raises(shards.ShardDirectoryMismatch) as refused:
        shards.check_compatible(manifest, other, directory="shards/x", labels=LABELS[:0], clips={"min_remainder_s": 1})
    message = str(refused.value)
    assert message.startswith("shards/x was built with other settings")
    assert "n_mels" in message and "example shape" in message
    assert "label vocabulary differs" in message and "clip settings" in message
    assert "Use another --out directory" in message
    with pytest.raises(shards.ShardDirectoryMismatch, match="format_version: 0 in the directory"):
        shards.check_compatible({**manifest, "format_version": 0}, CONFIG, directory="d")


def test_update_manifest_records_a_split_and_read_manifest_returns_it(tmp_path):
    base = shards.new_manifest(CONFIG, LABELS, CLIPS)
    assert shards.read_manifest(str(tmp_path)) is None
    shards.update_manifest(str(tmp_path), "train", base, {"examples": 3, "shards": []})
    shards.update_manifest(str(tmp_path), "eval", base, {"examples": 1, "shards": []})
    manifest = shards.read_manifest(str(tmp_path))
    assert {split: entry["examples"] for split, entry in manifest["splits"].items()} == {"train": 3, "eval": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest-eval.json", "manifest-train.json", "manifest.json"]


def test_a_jobs_debris_is_its_own_temporaries_only():
    assert shards.is_own_debris("train-00001-of-00003.tfrecord.tmp-ab12", "train")
    assert shards.is_own_debris("failures-train.jsonl.tmp-train-ab12", "train")
    assert shards.is_own_debris("manifest.json.tmp-train-ab12", "train")
    assert shards.is_own_debris("dataset_info.json.tmp-train-ab12", "train")  # TFDS metadata
    assert not shards.is_own_debris("features.json.tmp-eval-ab12", "train")
    assert not shards.is_own_debris("manifest.json.tmp-eval-ab12", "train")
    assert not shards.is_own_debris("eval-00001-of-00003.tfrecord.tmp-ab12", "train")
    assert not shards.is_own_debris("train-00001-of-00003.tfrecord", "train")
