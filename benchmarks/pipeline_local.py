"""Clips per second of the sharding job on a local source, and where the time goes.

Generates N ten-second clips (FLAC, 44.1 kHz stereo: resampling included), then
1. times each stage on one core in this process (ffmpeg decode, chunking, log-mel, serialise,
   write), and
2. runs the real job (``python -m pipeline --audio-dir``, DirectRunner) with 1 and 2 workers.

Prints one JSON object:

    python -m benchmarks.pipeline_local [--clips 200] [--workdir /tmp/mygo-bench]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pipeline import shards
from pipeline.audio import ClipSettings, DecodeRequest, decode_many, make_clips
from pipeline.job import DECODE_BATCH
from pipeline.spectrogram import DEFAULT_CONFIG, log_mel


def make_clips_on_disk(directory: Path, count: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)

    def one(index: int) -> Path:
        path = directory / f"clip{index:05d}.flac"
        if not path.exists():
            subprocess.run(
                ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                 f"sine=frequency={200 + 7 * index}:sample_rate=44100:duration=10", "-f", "lavfi", "-i",
                 "anoisesrc=color=pink:amplitude=0.05:sample_rate=44100:duration=10:seed=%d" % index,
                 "-filter_complex", "amix=inputs=2,aformat=channel_layouts=stereo", "-c:a", "flac", str(path)],
                check=True)
        return path

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(one, range(count)))


def stage_times(paths: list[Path], out: Path) -> dict[str, float]:
    """Milliseconds per clip of each stage, one core, in this process, as the job runs them
    (decoding a batch of DECODE_BATCH files per ffmpeg process)."""
    totals = dict.fromkeys(("decode", "chunk", "features", "serialise", "write"), 0.0)
    warm = shards.ClipExample("warm-up", "warm-up", 0.0, 10.0, 0, (), np.zeros(DEFAULT_CONFIG.shape, np.float16))
    warm.serialize()  # imports TensorFlow outside the timing
    records = []
    for first in range(0, len(paths), DECODE_BATCH):
        batch = paths[first : first + DECODE_BATCH]
        started = time.perf_counter()
        decoded = decode_many([DecodeRequest(str(path)) for path in batch], DEFAULT_CONFIG)
        totals["decode"] += time.perf_counter() - started
        for path, audio in zip(batch, decoded):
            started = time.perf_counter()
            (clip, *_) = make_clips(audio, DEFAULT_CONFIG, ClipSettings())
            chunked = time.perf_counter()
            logmel = log_mel(clip).astype(np.float16)
            featured = time.perf_counter()
            records.append(shards.ClipExample(path.stem, path.stem, 0.0, 10.0, 0, (), logmel).serialize())
            serialised = time.perf_counter()
            totals["chunk"] += chunked - started
            totals["features"] += featured - chunked
            totals["serialise"] += serialised - featured
    started = time.perf_counter()
    shards.write_shard(str(out / "stage-test.tfrecord"), records)
    totals["write"] = time.perf_counter() - started
    return {f"{stage}_ms_per_clip": round(1e3 * value / len(paths), 2) for stage, value in totals.items()}


def job_clips_per_second(audio: Path, out: Path, workers: int, count: int) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pipeline", "--audio-dir", str(audio), "--split", "train", "--out", str(out),
         "--cache", str(out) + "-cache", "--workers", str(workers), "--num-shards", str(2 * workers),
         "--log-level", "WARNING"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    written = shards.read_manifest(str(out))["splits"]["train"]["examples"]
    assert written == count, f"expected {count} examples, the job wrote {written}"
    return {"seconds": round(elapsed, 1), "clips_per_s": round(count / elapsed, 2),
            "clips_per_s_per_worker": round(count / elapsed / workers, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "mygo-bench-pipeline"))
    args = parser.parse_args()
    work = Path(args.workdir)
    paths = make_clips_on_disk(work / "audio", args.clips)
    stages = stage_times(paths[: min(64, len(paths))], work)
    result = {"benchmark": "pipeline_local", "clips": args.clips, "cores": os.cpu_count(), **stages,
              "stage_total_ms_per_clip": round(sum(stages.values()), 2)}
    result["stage_clips_per_s_one_core"] = round(1e3 / result["stage_total_ms_per_clip"], 1)
    for workers in (1, 2):
        result[f"job_{workers}_workers"] = job_clips_per_second(work / "audio", work / f"out{workers}", workers, args.clips)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
