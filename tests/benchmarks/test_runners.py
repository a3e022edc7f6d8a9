"""The pieces of benchmarks.runners that are not timings: the byte comparison of the shards and
the JSON it prints. (The benchmark itself runs six jobs and two Dask clusters: not the tests.)"""
from __future__ import annotations

import json

from benchmarks.runners import same_shards, summarise


def test_same_shards_compares_names_and_bytes(tmp_path):
    reference, same, other, missing = (tmp_path / name for name in ("reference", "same", "other", "missing"))
    for directory, second in ((reference, b"b"), (same, b"b"), (other, b"c")):
        directory.mkdir()
        (directory / "train-00000-of-00002.tfrecord").write_bytes(b"a")
        (directory / "train-00001-of-00002.tfrecord").write_bytes(second)
        (directory / "manifest.json").write_text("{}")  # not a shard: not compared
    missing.mkdir()
    (missing / "train-00000-of-00002.tfrecord").write_bytes(b"a")
    assert same_shards(same, reference)
    assert not same_shards(other, reference)
    assert not same_shards(missing, reference)
    assert not same_shards(reference, tmp_path / "empty")  # no reference shards: nothing proven


def test_summary_has_seconds_and_rates_per_configuration():
    summary = summarise({"direct_1_workers": 20.0, "dask_1_workers_first_job": 40.0}, 480,
                        {"dask_1_workers_first_job": True}, date="2026-12-02T10:00:00+00:00",
                        machine={"cpu_count": 2})
    assert json.loads(json.dumps(summary)) == {
        "benchmark": "runners", "clips": 480, "date": "2026-12-02T10:00:00+00:00", "machine": {"cpu_count": 2},
        "configurations": {"direct_1_workers": {"seconds": 20.0, "clips_per_s": 24.0},
                           "dask_1_workers_first_job": {"seconds": 40.0, "clips_per_s": 12.0}},
        "shards_identical": True, "shards_differing": []}
    assert summarise({"a": 1.0, "b": 1.0}, 1, {"b": False})["shards_differing"] == ["b"]
