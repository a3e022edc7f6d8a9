"""Peak memory of the sharding job at two dataset sizes, one ten times the other.

Runs the real job (``python -m pipeline --audio-dir``, DirectRunner, 2 workers, a fixed number of
shards per size so each shard holds the same number of clips) on N and 10·N generated clips and
reports the largest resident set of any process of the job (launcher or worker), from
``getrusage(RUSAGE_CHILDREN)``. Bounded memory means the two peaks are about equal.

    python -m benchmarks.memory_pipeline [--clips 20]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.pipeline_local import make_clips_on_disk

#: Every shard holds this many clips at both sizes, so only the number of shards and clips grows.
CLIPS_PER_SHARD = 10


def peak_rss_mb(command: list[str]) -> float:
    """Largest RSS (MB) among the processes of ``command``, run in a fresh child so earlier
    children do not count."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *command], check=True, capture_output=True, text=True).stdout
    return int(out.strip()) / 1024


def peak_rss_at_two_sizes(small: int, command_for: Callable[[int], list[str]], unit: str) -> dict[str, float]:
    """Peak RSS (MB) of ``command_for(n)`` for n = small and 10·small, and the ratio of the two
    (bounded memory: about 1)."""
    peaks = {count: round(peak_rss_mb(command_for(count)), 1) for count in (small, 10 * small)}
    return {**{f"peak_rss_mb_{count}_{unit}": peak for count, peak in peaks.items()},
            "growth_ratio_for_10x_data": round(peaks[10 * small] / peaks[small], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20, help="the small size; the large one is ten times it")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "mygo-bench-memory"))
    args = parser.parse_args()
    work = Path(args.workdir)

    def job(count: int) -> list[str]:
        audio = work / f"audio{count}"
        if not audio.exists():
            make_clips_on_disk(audio, count)
        out = work / f"out{count}"
        shutil.rmtree(out, ignore_errors=True)
        return [sys.executable, "-m", "pipeline", "--audio-dir", str(audio), "--split", "train", "--out", str(out),
                "--cache", str(work / "cache"), "--workers", "2", "--num-shards", str(max(1, count // CLIPS_PER_SHARD))]

    print(json.dumps({"benchmark": "memory_pipeline", "clips_per_shard": CLIPS_PER_SHARD,
                      **peak_rss_at_two_sizes(args.clips, job, "clips")}))


if __name__ == "__main__":
    main()
