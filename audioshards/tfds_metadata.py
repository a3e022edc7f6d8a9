"""TFDS metadata beside the manifest: a shard directory that ``tfds.builder_from_directory`` loads.

::

    import tensorflow_datasets as tfds
    builder = tfds.builder_from_directory("SHARD_DIR")
    builder.info.splits["train"].num_examples
    for example in builder.as_dataset(split="train"):  # logmel [256, 235, 2] float16, labels [n] int64, ...
        ...

:func:`write_metadata` writes TFDS's own files, ``dataset_info.json`` (splits, per-shard example
counts, file format and file name template), ``features.json`` (how a record decodes) and
``labels.labels.txt`` (the label names), from the manifest, which holds every split of the
directory. The shards themselves are untouched:

- File names stay ours (``train-00000-of-00003.tfrecord``): each split's ``filepathTemplate`` is
  ``{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}`` with ``fileFormat`` ``tfrecord``, where TFDS's default is
  ``{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}``.
- Features describe the records as they are: ``logmel`` a ``Tensor(shape, float16,
  encoding=BYTES)``, which TFDS stores and reads exactly as we write it (one bytes feature of the
  raw little-endian array, decoded with ``tf.io.decode_raw``); ``labels`` a ``Sequence`` of
  ``ClassLabel`` (an int64 list of any length, with the vocabulary's names); ``clip_id`` and
  ``ytid`` ``Text``; ``start_s``/``end_s`` float32 and ``chunk`` int64 scalars.

Decisions:
- The files are made with TFDS's classes (``FeaturesDict``, ``DatasetInfo``, ``SplitInfo``,
  ``ShardedFileTemplate``), not by writing their JSON by hand: the format is TFDS's to define and
  to change. This costs the pipeline little: ``import tensorflow_datasets`` took 0.3 s (warm) on
  the development machine, against about 5 s for TensorFlow, and building and writing the metadata
  imports no TensorFlow (TFDS imports it lazily, on reading). So ``tensorflow-datasets`` is in the
  core install: the job writes these files at the end of each split. TFDS's
  ``tfds.folder_dataset.write_metadata`` is not used: it lists the directory and counts records
  itself and reads an example back through TensorFlow, where the manifest already has the counts.
- TFDS writes into a local temporary directory (its paths are ``etils.epath``, which would import
  TensorFlow for ``gs://``); each file is then copied next to the shards through
  :mod:`audioshards.storage`, atomically, like the manifest.
- Two jobs (train and eval) finish into one directory: the metadata is rebuilt from the whole
  manifest every time, never updated in place, and rewritten until the manifest read after the
  write still has the splits it was built from, so the last writer's files hold both splits
  (the argument of :func:`audioshards.shards.update_manifest`).
- Label names are the vocabulary's display names (AudioSet's are unique); MIDs where they are not.
  ``num_bytes`` of a split is left 0 (unknown): the manifest has counts, not sizes.
- A split whose manifest entry does not list every shard under our names is left out with a
  warning rather than failing the job at its very end (the job always lists them all; hand-made
  manifests may not).
"""
from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

from audioshards import shards, storage

log = logging.getLogger(__name__)

DATASET_NAME = "mygo_logmel"
FILEPATH_TEMPLATE = "{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}"
FILE_FORMAT = "tfrecord"
#: Rounds of rebuilding before giving up on a manifest that keeps changing (as in update_manifest).
ROUNDS = 20


def label_names(manifest: dict[str, Any]) -> list[str]:
    """Names of the label indices 0..n-1: display names if unique, MIDs otherwise."""
    labels = sorted(manifest.get("labels", []), key=lambda entry: entry["index"])
    names = [entry["display_name"] for entry in labels]
    if len(set(names)) != len(names):
        names = [entry["mid"] for entry in labels]
    return names


def features(manifest: dict[str, Any]):
    """The ``tfds.features.FeaturesDict`` of a shard record (the manifest gives shape and labels)."""
    import numpy as np
    import tensorflow_datasets as tfds

    example = manifest["example"]
    if example.get("byte_order", "little") != "little":
        raise ValueError(f"logmel byte order {example['byte_order']!r}: TFDS decodes little-endian only")
    scalar = tfds.features.Scalar
    return tfds.features.FeaturesDict({
        example.get("feature", "logmel"): tfds.features.Tensor(
            shape=tuple(example["shape"]), dtype=np.dtype(example["dtype"]),
            encoding=tfds.features.Encoding.BYTES,
            doc="log-mel spectrogram [mel, frames, channels] in dB, stored as raw little-endian bytes"),
        "clip_id": tfds.features.Text(doc="<YTID>_<start ms>_<chunk>"),
        "ytid": tfds.features.Text(doc="YouTube id of the source"),
        "start_s": scalar(dtype=np.float32, doc="segment start in the source, seconds"),
        "end_s": scalar(dtype=np.float32, doc="segment end in the source, seconds"),
        "chunk": scalar(dtype=np.int64, doc="index of the 10 s clip within its segment"),
        "labels": tfds.features.Sequence(tfds.features.ClassLabel(names=label_names(manifest)),
                                         doc="label indices of the segment (manifest.json: labels)"),
    })


def shard_lengths(split: str, entry: dict[str, Any]) -> list[int] | None:
    """Examples per shard, in index order; None (with a warning) unless the manifest lists every
    shard of the split, named as :func:`audioshards.shards.shard_file_name` names them: TFDS finds
    the files by the template and the shard count alone."""
    listed = sorted(entry.get("shards", []), key=lambda shard: shard["file"])
    expected = [shards.shard_file_name(split, index, len(listed)) for index in range(len(listed))]
    if not listed or [shard["file"] for shard in listed] != expected:
        log.warning("TFDS metadata leaves out split %r: its manifest entry lists shards %s, not %s",
                    split, [shard["file"] for shard in listed], expected or "any")
        return None
    return [int(shard["examples"]) for shard in listed]


def dataset_info(directory: str, manifest: dict[str, Any]):
    """The ``tfds.core.DatasetInfo`` of a shard directory, from its manifest (all its splits)."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import dataset_info as info_lib
    from tensorflow_datasets.core import file_adapters, naming
    from tensorflow_datasets.core import splits as split_lib

    template = naming.ShardedFileTemplate(data_dir=directory, template=FILEPATH_TEMPLATE,
                                          dataset_name=DATASET_NAME, filetype_suffix=FILE_FORMAT)
    identity = info_lib.DatasetIdentity(name=DATASET_NAME, version=tfds.core.Version(f"{manifest['format_version']}.0.0"),
                                        data_dir=directory, module_name="")
    info = info_lib.DatasetInfo(
        builder=identity,
        features=features(manifest),
        description="AudioSet clips as log-mel spectrograms, written by MyGO's shard job (pipeline/); "
        "manifest.json beside this file has the spectrogram settings and per-band statistics.",
    )
    info.set_file_format(file_adapters.FileFormat.TFRECORD)
    lengths = {split: shard_lengths(split, entry) for split, entry in sorted(manifest.get("splits", {}).items())}
    info.set_splits(split_lib.SplitDict([
        split_lib.SplitInfo(name=split, shard_lengths=counts, num_bytes=0, filename_template=template.replace(split=split))
        for split, counts in lengths.items() if counts is not None
    ]))
    return info


def _write_once(directory: str, manifest: dict[str, Any], tag: str) -> list[str]:
    """TFDS writes its files into a local temporary directory; each is copied next to the shards."""
    info = dataset_info(directory, manifest)
    with tempfile.TemporaryDirectory(prefix="tfds-metadata-") as scratch:
        info.write_to_directory(scratch)
        names = sorted(os.listdir(scratch))
        for name in names:
            with open(os.path.join(scratch, name), "rb") as handle:
                storage.write_bytes_atomic(storage.join(directory, name), handle.read(), tag=tag)
    return names


def write_metadata(directory: str, manifest: dict[str, Any] | None = None, *, tag: str = "") -> dict[str, Any]:
    """Write ``dataset_info.json``, ``features.json`` and ``labels.labels.txt`` for the splits of
    ``manifest`` (by default, and again after each write, :func:`audioshards.shards.read_manifest`
    of ``directory``). Returns the manifest the files were last built from. ``tag`` (a split)
    goes into the temporary file names."""
    directory = directory.rstrip("/")
    if manifest is None:
        manifest = shards.read_manifest(directory)
    if manifest is None:
        raise ValueError(f"{directory}: no manifest to describe")
    for _ in range(ROUNDS):
        names = _write_once(directory, manifest, tag)
        current = shards.read_manifest(directory)
        if current is None or current.get("splits") == manifest.get("splits"):
            break
        manifest = current
    else:
        log.warning("%s: the manifest kept changing while the TFDS metadata was written", directory)
    log.info("TFDS metadata (%s) for splits %s", ", ".join(names), sorted(manifest.get("splits", {})))
    return manifest
