"""How the job reads its segments: one pass in the launcher, then each worker reads only its batch's
byte range of a CSV (never a whole CSV), and --limit stops the reading."""
from __future__ import annotations

import logging
import tracemalloc
from pathlib import Path

import pytest

from pipeline import job
from pipeline.config import JobConfig
from pipeline.segments import SegmentError, load_vocabulary, parse_segments_csv

VOCABULARY = load_vocabulary()
HEADER = "# Segments csv\n# num_ytids=...\n# YTID, start_seconds, end_seconds, positive_labels\n"


def ytid(number: int) -> str:
    return f"id{number:09d}"


def rows(first: int, count: int) -> str:
    return "".join(f'{ytid(n)}, {n % 7}.000, {n % 7 + 10}.000, "/m/09x0r,/t/dd00088"\n' for n in range(first, first + count))


def config(tmp_path: Path, *csvs: Path, **settings) -> JobConfig:
    return JobConfig(split="train", out=str(tmp_path / "out"), cache=str(tmp_path / "cache"),
                     segments=tuple(str(c) for c in csvs), **settings)


def read_all(plan: job.SegmentPlan, cfg: JobConfig) -> list:
    return [segment for batch in plan.batches for segment in job.read_segment_batch(batch, cfg)]


def test_the_batches_together_are_the_csvs_in_order(tmp_path, caplog):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    size = job.SEGMENT_BATCH
    first.write_text(HEADER + rows(0, size - 1) + "bad row, x\n" + rows(size, size + 7), encoding="utf-8-sig")
    second.write_text(rows(10 * size, 5))
    cfg = config(tmp_path, first, second, skip_bad_rows=True)
    with caplog.at_level(logging.WARNING):
        plan = job.plan_segments(cfg)
    assert caplog.text.count("skipping") == 1  # the launcher's pass; the workers do not repeat it
    expected = (parse_segments_csv(str(first), VOCABULARY, skip_bad_rows=True)
                + parse_segments_csv(str(second), VOCABULARY))
    assert plan.total == len(expected) == 2 * size + 6 + 5
    assert [(b.source, b.count) for b in plan.batches] == [
        (str(first), size), (str(first), size), (str(first), 6), (str(second), 5)]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert read_all(plan, cfg) == expected
    assert "skipping" not in caplog.text


def test_limit_stops_reading_so_nothing_after_it_is_parsed(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text(HEADER + rows(0, 10) + "a row that is bad, and would stop the job\n" + rows(10, 5))
    cfg = config(tmp_path, csv, limit=10)
    plan = job.plan_segments(cfg)
    assert plan.total == 10
    assert [s.ytid for s in read_all(plan, cfg)] == [ytid(n) for n in range(10)]
    with pytest.raises(SegmentError, match="line 14: "):
        job.plan_segments(config(tmp_path, csv, limit=11))


def test_a_worker_reads_only_its_own_range(tmp_path):
    csv = tmp_path / "a.csv"
    size = job.SEGMENT_BATCH
    csv.write_text(HEADER + rows(0, 3 * size))
    cfg = config(tmp_path, csv)
    plan = job.plan_segments(cfg)
    middle = plan.batches[1]
    # Spoil every byte outside the middle batch's range (same length, so its offset still holds).
    data = bytearray(csv.read_bytes())
    end = plan.batches[2].offset
    data[: middle.offset] = b"!" * middle.offset
    data[end:] = b"!" * (len(data) - end)
    csv.write_bytes(bytes(data))
    assert [s.ytid for s in job.read_segment_batch(middle, cfg)] == [ytid(n) for n in range(size, 2 * size)]


def test_reading_a_batch_of_a_large_csv_holds_one_batch(tmp_path):
    csv = tmp_path / "big.csv"
    csv.write_text(HEADER + rows(0, 100_000))  # 6.4 MB; parsed whole, ~40 MB of Segment objects
    cfg = config(tmp_path, csv)
    plan = job.plan_segments(cfg)
    tracemalloc.start()
    try:
        segments = list(job.read_segment_batch(plan.batches[-1], cfg))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(segments) == job.SEGMENT_BATCH and segments[-1].ytid == ytid(99_999)
    assert peak < 4_000_000, f"reading one batch allocated {peak / 1e6:.1f} MB"


def test_a_segment_listed_twice_is_named(tmp_path):
    csv = tmp_path / "a.csv"
    size = job.SEGMENT_BATCH
    csv.write_text(rows(0, size + 3) + rows(5, 1))  # id000000005 at 5 s again, in another batch
    with pytest.raises(SegmentError, match=r"duplicate segment id000000005_5000 \(YTID id000000005 at 5.0 s"):
        job.plan_segments(config(tmp_path, csv))
    csv.write_text(rows(0, 3) + rows(2, 1).replace(", 2.000, 12.000,", ", 20.000, 30.000,"))  # other start: fine
    assert job.plan_segments(config(tmp_path, csv)).total == 4


def test_local_files_are_attached_batch_by_batch(tmp_path, caplog):
    csv = tmp_path / "a.csv"
    csv.write_text(rows(0, 3))
    audio = tmp_path / "audio"
    audio.mkdir()
    (audio / f"Y{ytid(0)}.wav").write_bytes(b"x")
    (audio / f"{ytid(2)}_2000.flac").write_bytes(b"x")
    cfg = config(tmp_path, csv, audio_dir=str(audio))
    with caplog.at_level(logging.WARNING):
        plan = job.plan_segments(cfg)
    assert f"1 of 3 segments have no file in {audio}" in caplog.text
    segments = read_all(plan, cfg)
    assert [(Path(s.path).name if s.path else None, s.precut) for s in segments] == [
        (f"Y{ytid(0)}.wav", False), (None, False), (f"{ytid(2)}_2000.flac", True)]


def test_an_audio_directory_without_csv_is_read_in_ranges_of_its_listing(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in ("b.wav", "a.flac", "c.mp3", "notes.txt"):
        (audio / name).write_bytes(b"x")
    cfg = JobConfig(split="train", out=str(tmp_path / "o"), cache=str(tmp_path / "c"), audio_dir=str(audio), limit=2)
    plan = job.plan_segments(cfg)
    assert plan.total == 2
    assert [s.ytid for s in read_all(plan, cfg)] == ["a.flac", "b.wav"]


def test_a_csv_on_a_remote_file_system_is_read_in_ranges_too(tmp_path):
    import os
    import time

    import tensorflow as tf

    csv = f"ram://segments-{os.getpid()}-{time.time_ns()}.csv"
    size = job.SEGMENT_BATCH
    with tf.io.gfile.GFile(csv, "w") as handle:
        handle.write(HEADER + rows(0, size + 3))
    cfg = JobConfig(split="train", out=str(tmp_path / "o"), cache=str(tmp_path / "c"), segments=(csv,))
    plan = job.plan_segments(cfg)
    assert [(b.count, b.line) for b in plan.batches] == [(size, 4), (3, size + 4)]
    assert [s.ytid for s in job.read_segment_batch(plan.batches[1], cfg)] == [ytid(n) for n in range(size, size + 3)]
