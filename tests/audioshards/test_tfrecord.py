"""The shard files without TensorFlow: the same bytes as TensorFlow's writer, read back by tf.data."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from audioshards import shards, tfrecord

SHAPE = (4, 3, 2)


def clip(index: int, labels: tuple[int, ...] = (3, 17)) -> shards.ClipExample:
    logmel = np.random.default_rng(index).normal(-40, 10, SHAPE).astype(np.float16)
    return shards.ClipExample(clip_id=f"abcdefghijk_2500_{index}", ytid="abcdefghijk", start_s=2.5, end_s=12.5,
                              chunk=index, labels=labels, logmel=logmel)


def tensorflow_serialized(example: shards.ClipExample) -> bytes:
    """The record as TensorFlow's own tf.train.Example builds it."""
    def floats(value):
        return tf.train.Feature(float_list=tf.train.FloatList(value=value))

    def ints(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=value))

    def raw(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    feature = {"logmel": raw(example.logmel.astype("<f2").tobytes()), "clip_id": raw(example.clip_id.encode()),
               "ytid": raw(example.ytid.encode()), "start_s": floats([example.start_s]),
               "end_s": floats([example.end_s]), "chunk": ints([example.chunk]), "labels": ints(list(example.labels))}
    proto = tf.train.Example(features=tf.train.Features(feature=feature))
    return proto.SerializeToString(deterministic=True)


@pytest.mark.parametrize("labels", [(3, 17), (), (526,)], ids=["two", "unlabelled", "one"])
def test_an_example_serialises_to_tensorflows_bytes_and_back(labels):
    example = clip(1, labels)
    record = example.serialize()
    assert record == tensorflow_serialized(example)
    parsed = shards.ClipExample.parse(record, SHAPE)
    assert (parsed.clip_id, parsed.ytid, parsed.start_s, parsed.end_s, parsed.chunk, parsed.labels) == (
        example.clip_id, example.ytid, 2.5, 12.5, 1, labels)
    np.testing.assert_array_equal(parsed.logmel, example.logmel)


def test_a_shard_file_has_the_bytes_of_tensorflows_writer_and_tf_data_reads_it(tmp_path):
    records = [clip(index).serialize() for index in range(3)]
    ours, theirs = tmp_path / "ours.tfrecord", tmp_path / "theirs.tfrecord"
    assert shards.write_shard(str(ours), records) == 3
    with tf.io.TFRecordWriter(str(theirs)) as writer:
        for record in records:
            writer.write(record)
    assert ours.read_bytes() == theirs.read_bytes()
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(ours))] == records
    assert [e.clip_id for e in shards.read_examples(str(ours), SHAPE)] == [f"abcdefghijk_2500_{i}" for i in range(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.tfrecord", "theirs.tfrecord"]  # no temporary left


def test_an_empty_record_is_framed_like_tensorflows(tmp_path):
    path = tmp_path / "empty.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(b"")
    assert tfrecord.frame(b"") == path.read_bytes()
    with path.open("rb") as handle:
        assert list(tfrecord.iter_records(handle)) == [b""]


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:-3], "truncated: record 1 at byte"),
    (lambda data: data[:-(len(data) - 5)], "truncated: a record header at byte 0 is cut off"),
    (lambda data: data[:8] + bytes([data[8] ^ 1]) + data[9:], "corrupt: bad length checksum of record 0 at byte 0"),
    (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "corrupt: bad data checksum of record 1 at byte"),
])
def test_a_damaged_file_is_refused_saying_where(tmp_path, damage, message):
    path = tmp_path / "shard.tfrecord"
    shards.write_shard(str(path), [clip(0).serialize(), clip(1).serialize()])
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(tfrecord.RecordError, match=message):
        shards.read_examples(str(path), SHAPE)


def test_writing_and_reading_shards_does_not_import_tensorflow(tmp_path):
    script = f"""
import sys
import numpy as np
from audioshards import shards
example = shards.ClipExample("abcdefghijk_0_0", "abcdefghijk", 0.0, 10.0, 0, (1,), np.zeros({SHAPE}, np.float16))
shards.write_shard({str(tmp_path / 'a.tfrecord')!r}, [example.serialize()])
assert shards.read_examples({str(tmp_path / 'a.tfrecord')!r}, {SHAPE})[0].labels == (1,)
print(sorted(name for name in sys.modules if name.split('.')[0] == 'tensorflow'))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
