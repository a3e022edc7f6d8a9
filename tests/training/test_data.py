"""The shard reader: manifest checks, corrupt shards, and the tf.data stream."""
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from audioshards import shards as shard_format
from audioshards.shards import ShardDirectoryMismatch
from training import data


@pytest.fixture
def copy_of(shard_dir, tmp_path):
    def copy():
        target = tmp_path / "shards"
        shutil.copytree(shard_dir, target)
        return target
    return copy


def all_examples(directory) -> dict[bytes, np.ndarray]:
    """logmel bytes → array, for every example of the directory."""
    manifest = shard_format.read_manifest(str(directory))
    found = {}
    for shard in manifest["splits"]["train"]["shards"]:
        for example in shard_format.read_examples(str(directory / shard["file"]), manifest["example"]["shape"]):
            found[example.logmel.tobytes()] = example.logmel
    return found


def edit_manifest(directory, change):
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_open_shards_reads_the_manifest(shard_dir):
    shards = data.open_shards(str(shard_dir))
    assert shards.total == 36 and len(shards.files) == 2 and not shards.skipped
    assert shards.shape == (256, 235, 2)
    assert len(shards.band_mean) == len(shards.band_std) == 256
    assert all(f.endswith(".tfrecord") for f in shards.files)


def test_stream_gives_float16_batches_covering_an_epoch_once(shard_dir):
    shards = data.open_shards(str(shard_dir))
    stream = data.train_stream(shards, 4, seed=3, shuffle_buffer=8, deterministic=True)
    assert stream.element_spec.shape == (4, 256, 235, 2) and stream.element_spec.dtype == tf.float16
    examples = all_examples(shard_dir)
    seen = [row.tobytes() for batch in stream.take(9) for row in batch.numpy()]  # 36 = 9 × 4: one epoch
    assert sorted(seen) == sorted(examples)  # every example once, values intact
    again = [row.tobytes() for batch in data.train_stream(shards, 4, seed=3, shuffle_buffer=8,
                                                           deterministic=True).take(9) for row in batch.numpy()]
    assert again == seen
    other_seed = [row.tobytes() for batch in data.train_stream(shards, 4, seed=4, shuffle_buffer=8,
                                                                deterministic=True).take(9) for row in batch.numpy()]
    assert other_seed != seen
    next_epoch = [row.tobytes() for batch in stream.skip(9).take(9) for row in batch.numpy()]
    assert sorted(next_epoch) == sorted(examples) and next_epoch != seen  # reshuffled per epoch


def test_deterministic_stream_resumes_at_a_step(shard_dir):
    shards = data.open_shards(str(shard_dir))
    make = lambda start: data.train_stream(shards, 4, seed=1, shuffle_buffer=8, deterministic=True,  # noqa: E731
                                           start_step=start)
    full = [b.numpy() for b in make(0).take(14)]
    resumed = [b.numpy() for b in make(11).take(3)]  # step 11 is inside the second epoch
    for a, b in zip(full[11:], resumed):
        np.testing.assert_array_equal(a, b)


def test_input_pipelines_read_disjoint_files(shard_dir):
    shards = data.open_shards(str(shard_dir))
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                             num_replicas_in_sync=2)
        count = shards.examples[pipeline]
        stream = data.train_stream(shards, 1, shuffle_buffer=4, deterministic=True, input_context=context)
        seen.append({row.tobytes() for batch in stream.take(count) for row in batch.numpy()})
        assert len(seen[-1]) == count
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 36


@pytest.mark.parametrize("change, expected", [
    (lambda m: m["spectrogram"].update(n_mels=128), "n_mels: 128 != 256"),
    (lambda m: m["spectrogram"].update(hop_length=1024), "hop_length"),
    (lambda m: m.update(format_version=99), "format_version: 99"),
    (lambda m: m["example"].update(shape=[256, 100, 2]), "example shape: [256, 100, 2]"),
])
def test_mismatched_manifest_is_refused_naming_the_difference(copy_of, change, expected):
    directory = copy_of()
    edit_manifest(directory, change)
    with pytest.raises(ShardDirectoryMismatch, match="other settings") as error:
        data.open_shards(str(directory))
    assert expected in str(error.value)


def test_missing_manifest_split_or_statistics(tmp_path, copy_of):
    with pytest.raises(data.ShardProblem, match="no manifest.json"):
        data.open_shards(str(tmp_path))
    directory = copy_of()
    with pytest.raises(data.ShardProblem, match="no 'eval' split"):
        data.open_shards(str(directory), split="eval")
    edit_manifest(directory, lambda m: m["splits"]["train"].update(band_mean=[]))
    with pytest.raises(data.ShardProblem, match="per-band statistics"):
        data.open_shards(str(directory))


def test_truncated_shard_is_reported_by_name_or_skipped(copy_of):
    directory = copy_of()
    victim = directory / "train-00001-of-00002.tfrecord"
    victim.write_bytes(victim.read_bytes()[:-5000])
    with pytest.raises(data.CorruptShard, match="train-00001-of-00002.tfrecord: truncated"):
        data.open_shards(str(directory))
    shards = data.open_shards(str(directory), skip_corrupt=True)
    manifest = shard_format.read_manifest(str(directory))
    lost = manifest["splits"]["train"]["shards"][1]["examples"]
    assert shards.files == (str(directory / "train-00000-of-00002.tfrecord"),)
    assert shards.skipped_examples == lost and shards.total == 36 - lost
    assert len(shards.skipped) == 1 and "train-00001" in shards.skipped[0]


def test_corrupt_header_and_wrong_count_are_reported(copy_of):
    directory = copy_of()
    path = directory / "train-00000-of-00002.tfrecord"
    raw = bytearray(path.read_bytes())
    raw[3] ^= 0xFF  # the first record's length
    path.write_bytes(bytes(raw))
    assert "bad length checksum of record 0" in data.verify_shard(str(path))
    good = directory / "train-00001-of-00002.tfrecord"
    assert data.verify_shard(str(good)) is None
    assert "has " in data.verify_shard(str(good), expected_examples=1000)
    assert data.verify_shard(str(directory / "nothing.tfrecord")) == "missing"


def test_cli_reports_a_truncated_shard_by_name(copy_of, tmp_path, train_in_process):
    directory = copy_of()
    victim = directory / "train-00000-of-00002.tfrecord"
    victim.write_bytes(victim.read_bytes()[:1000])
    result = train_in_process("--shards", str(directory), "--out", str(tmp_path / "run"), "--steps", "1")
    assert result.returncode == 2
    assert "train-00000-of-00002.tfrecord: truncated" in result.stdout + result.stderr
    assert "--skip-corrupt" in result.stdout + result.stderr


def test_a_damaged_payload_is_found_by_name(copy_of):
    directory = copy_of()
    path = directory / "train-00001-of-00002.tfrecord"
    raw = bytearray(path.read_bytes())
    raw[5000] ^= 0xFF  # inside the first record's payload: the framing check cannot see it
    path.write_bytes(bytes(raw))
    assert data.verify_shard(str(path)) is None
    shards = data.open_shards(str(directory))
    bad = data.find_unreadable(shards.files)
    assert len(bad) == 1 and bad[0].startswith(str(path))
    with pytest.raises(tf.errors.DataLossError):
        for _ in data.train_stream(shards, 4, shuffle_buffer=8).take(20):
            pass
    skipping = data.train_stream(shards, 4, shuffle_buffer=8, skip_corrupt=True)
    assert len(list(skipping.take(20))) == 20  # --skip-corrupt: the damaged file's rest is dropped
