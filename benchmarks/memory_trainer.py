"""Peak memory of the trainer's host process at two dataset sizes, one ten times the other.

Writes N and 10·N synthetic examples as shards with the pipeline's shard writer (4 examples per
shard, so the larger set has ten times the files as well as the records), trains ``tiny`` for the
same number of steps over each (``python -m training train``, in a child process) and reports the
child's peak resident set (``benchmarks.memory_pipeline``). The stream holds a shuffle block of
``--shuffle-buffer`` records, the read buffers of the files it interleaves and a few batches,
whatever the dataset size, so the peaks should be about equal. Three things keep the small set
from flattering itself: the shuffle buffer is below N (else it holds the whole small set); the
small set has at least 32 files, because the parallel interleave reads 8 files and opens about 16
more ahead (its memory stops growing at 24 files; with 16 files in the small set the larger one
took 60-90 MB more, all of it those readers); and the steps cover more than one pass over the
small set, so its epoch boundary is crossed.

    python -m benchmarks.memory_trainer [--examples 128] [--steps 20] [--batch 8] [--shuffle-buffer 64]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.input_stream import write_data
from benchmarks.memory_pipeline import peak_rss_at_two_sizes

EXAMPLES_PER_SHARD = 4
MIN_FILES = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=128, help="the small size; the large one is ten times it")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--shuffle-buffer", type=int, default=64)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "mygo-bench-memory-trainer"))
    args = parser.parse_args()
    if args.shuffle_buffer >= args.examples:
        raise SystemExit("--shuffle-buffer must be smaller than --examples, or it holds the whole small set")
    if args.examples < MIN_FILES * EXAMPLES_PER_SHARD:
        raise SystemExit(f"--examples must be at least {MIN_FILES * EXAMPLES_PER_SHARD} ({MIN_FILES} shards)")
    work = Path(args.workdir)

    def train(count: int) -> list[str]:
        shards = work / f"shards{count}"
        if not (shards / "manifest.json").exists():
            write_data(shards, count, max(1, count // EXAMPLES_PER_SHARD), npy_copy=False)
        out = work / f"run{count}"
        shutil.rmtree(out, ignore_errors=True)
        return [sys.executable, "-m", "training", "train", "--shards", str(shards), "--out", str(out),
                "--model", "tiny", "--batch", str(args.batch), "--steps", str(args.steps),
                "--shuffle-buffer", str(args.shuffle_buffer), "--log-every", str(args.steps)]

    print(json.dumps({"benchmark": "memory_trainer", "model": "tiny", "steps": args.steps, "batch": args.batch,
                      "shuffle_buffer": args.shuffle_buffer, "examples_per_shard": EXAMPLES_PER_SHARD,
                      **peak_rss_at_two_sizes(args.examples, train, "examples")}))


if __name__ == "__main__":
    main()
