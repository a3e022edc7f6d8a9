"""TFRecord files of ``tf.train.Example`` records, written and read without importing TensorFlow.

Why not ``tf.io.TFRecordWriter`` and ``tf.train.Example``: importing TensorFlow costs about 3.5 s
of CPU in every process that touches a shard, and the sharding job starts many (the launcher and
each Beam worker, on every run, and again on every Dataflow worker). The job writes examples only,
so it does not need the rest of TensorFlow; the trainer still reads the files with
``tf.data.TFRecordDataset``, which is where a reader's speed matters.

What is here is the format, not a re-implementation of a library:
- the record framing (``uint64 length, uint32 masked CRC-32C of the length, data, uint32 masked
  CRC-32C of the data``, little-endian), checksummed by crcmod's C extension;
- the ``tf.train.Example`` messages, declared from TensorFlow's ``example.proto`` and
  ``feature.proto`` into a private protobuf descriptor pool and encoded by the protobuf runtime
  (the same library TensorFlow uses), with deterministic serialisation. Tests check that both give
  the bytes TensorFlow's own writer and ``SerializeToString(deterministic=True)`` give.
"""
from __future__ import annotations

import functools
import struct
from typing import Any, BinaryIO, Iterator

import crcmod.predefined
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_crc32c = crcmod.predefined.mkPredefinedCrcFun("crc-32c")
HEADER_BYTES = 12  # uint64 length + uint32 masked CRC of it
FOOTER_BYTES = 4   # uint32 masked CRC of the data


class RecordError(ValueError):
    """A TFRecord file whose framing is broken: the message says where."""


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C, rotated right by 15 bits, plus a constant."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    """One record as it is stored in a TFRecord file."""
    length = struct.pack("<Q", len(record))
    return b"".join((length, struct.pack("<I", masked_crc32c(length)), record,
                     struct.pack("<I", masked_crc32c(record))))


def read_length(header: bytes, offset: int, index: int) -> int:
    """The data length of a record from its 12-byte header; RecordError if the header's checksum
    does not match (``offset`` and ``index`` name the record in the message)."""
    length, length_crc = struct.unpack("<QI", header)
    if masked_crc32c(header[:8]) != length_crc:
        raise RecordError(f"corrupt: bad length checksum of record {index} at byte {offset}")
    return length


def iter_records(handle: BinaryIO) -> Iterator[bytes]:
    """The records of an open TFRecord file, every checksum verified; RecordError otherwise."""
    offset = index = 0
    while header := handle.read(HEADER_BYTES):
        if len(header) < HEADER_BYTES:
            raise RecordError(f"truncated: a record header at byte {offset} is cut off")
        length = read_length(header, offset, index)
        body = handle.read(length + FOOTER_BYTES)
        if len(body) < length + FOOTER_BYTES:
            raise RecordError(f"truncated: record {index} at byte {offset} is cut off")
        record = body[:length]
        if struct.unpack("<I", body[length:])[0] != masked_crc32c(record):
            raise RecordError(f"corrupt: bad data checksum of record {index} at byte {offset}")
        yield record
        offset += HEADER_BYTES + length + FOOTER_BYTES
        index += 1


def _field(name: str, number: int, kind: int, *, label: int = 1, type_name: str = "",
           oneof: int | None = None, packed: bool = False) -> descriptor_pb2.FieldDescriptorProto:
    field = descriptor_pb2.FieldDescriptorProto(name=name, number=number, type=kind, label=label, json_name=name)
    if type_name:
        field.type_name = type_name
    if oneof is not None:
        field.oneof_index = oneof
    if packed:
        field.options.packed = True
    return field


@functools.cache
def example_message() -> Any:
    """The ``tensorflow.Example`` message class (fields as in TensorFlow's example.proto)."""
    F = descriptor_pb2.FieldDescriptorProto
    repeated = F.LABEL_REPEATED
    proto = descriptor_pb2.FileDescriptorProto(name="audioshards/example.proto", package="tensorflow",
                                               syntax="proto3")
    proto.message_type.add(name="BytesList").field.append(_field("value", 1, F.TYPE_BYTES, label=repeated))
    proto.message_type.add(name="FloatList").field.append(
        _field("value", 1, F.TYPE_FLOAT, label=repeated, packed=True))
    proto.message_type.add(name="Int64List").field.append(
        _field("value", 1, F.TYPE_INT64, label=repeated, packed=True))
    feature = proto.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, (name, kind) in enumerate((("bytes_list", "BytesList"), ("float_list", "FloatList"),
                                            ("int64_list", "Int64List")), start=1):
        feature.field.append(_field(name, number, F.TYPE_MESSAGE, type_name=f".tensorflow.{kind}", oneof=0))
    features = proto.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.append(_field("key", 1, F.TYPE_STRING))
    entry.field.append(_field("value", 2, F.TYPE_MESSAGE, type_name=".tensorflow.Feature"))
    features.field.append(_field("feature", 1, F.TYPE_MESSAGE, label=repeated,
                                 type_name=".tensorflow.Features.FeatureEntry"))
    example = proto.message_type.add(name="Example")
    example.field.append(_field("features", 1, F.TYPE_MESSAGE, type_name=".tensorflow.Features"))
    pool = descriptor_pool.DescriptorPool()  # private: TensorFlow's own classes may be loaded too
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))

