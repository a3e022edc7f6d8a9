"""Clips per second of the sharding job on the DirectRunner and on a Dask cluster, side by side.

Generates N ten-second clips (``benchmarks/pipeline_local.py``'s generator: FLAC, 44.1 kHz stereo)
and their AudioSet segment list once, then runs the real job (``python -m pipeline --segments CSV
--audio-dir DIR``: decode, log-mel and shards, no download) on those same clips, one job after the
other on this machine:

- DirectRunner with ``--workers 1`` and ``--workers 2``;
- Dask with 1 worker and with 2 workers: a ``dask scheduler`` and ``dask worker --nthreads 1``
  processes on 127.0.0.1 started by this script (a fresh cluster per worker count, stopped at the
  end, also on an error), each measured twice: the first job on the fresh workers (which import
  Beam and compile the log-mel kernels) and the next job (the same workers, warm).

Each job writes into its own fresh ``--out`` and ``--cache``; its time is the wall-clock seconds of
the ``python -m pipeline`` process (start-up included), and clips/s is N over it. Every job's shard
files must be byte-identical to those of the first DirectRunner job (``shards_identical``). The
JSON has the machine (cores, platform), the date, this command and the job's command; progress
goes to stderr and each job's console to ``<work>/<configuration>.log``.

The machine's other load changes wall-clock times: compare the configurations of one run, not
runs on different days (the load average at the start and end is in the JSON). The defaults are
the setup of docs/dask.md's throughput table (480 clips, 4 shards).

    python -m benchmarks.runners [--clips 480] [--num-shards 4] [--work /tmp/mygo-bench-runners]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from audioshards import shards
from benchmarks.pipeline_local import make_clips_on_disk, write_segments_csv
from pipeline.local_dask import LocalDaskCluster

#: The configurations in the order they run; the first is the reference of the byte comparison.
DIRECT = ("direct_1_workers", "direct_2_workers")
DASK_WORKER_COUNTS = (1, 2)


def dask_configurations(workers: int) -> tuple[str, str]:
    """The names of the first job on fresh workers and the next one, on ``workers`` Dask workers."""
    return f"dask_{workers}_workers_first_job", f"dask_{workers}_workers_next_job"


def shard_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("train-*.tfrecord"))


def same_shards(out: Path, reference: Path) -> bool:
    """Whether ``out`` has the shard files of ``reference``, same names and same bytes."""
    ours, theirs = shard_files(out), shard_files(reference)
    return bool(theirs) and [p.name for p in ours] == [p.name for p in theirs] and all(
        mine.read_bytes() == expected.read_bytes() for mine, expected in zip(ours, theirs))


def summarise(seconds: dict[str, float], clips: int, identical: dict[str, bool], **context) -> dict:
    """The benchmark's JSON object: ``context`` (machine, date, commands, ...), then per
    configuration its seconds and clips/s, and whether every output equals the reference's."""
    return {"benchmark": "runners", "clips": clips, **context,
            "configurations": {name: {"seconds": round(value, 2), "clips_per_s": round(clips / value, 2)}
                               for name, value in seconds.items()},
            "shards_identical": all(identical.values()),
            "shards_differing": sorted(name for name, same in identical.items() if not same)}


def run_job(base: list[str], runner: list[str], work: Path, name: str, clips: int) -> float:
    """Runs the job once into ``<work>/<name>`` (fresh out and cache); its wall-clock seconds."""
    out, cache = work / name, work / f"{name}-cache"
    for directory in (out, cache):
        shutil.rmtree(directory, ignore_errors=True)
    log = work / f"{name}.log"
    print(f"runners: {name} ...", file=sys.stderr, flush=True)
    with open(log, "w") as console:
        started = time.perf_counter()
        code = subprocess.run([*base, "--out", str(out), "--cache", str(cache), *runner],
                              stdout=console, stderr=subprocess.STDOUT).returncode
        elapsed = time.perf_counter() - started
    if code:
        sys.stderr.write(log.read_text()[-4000:])
        raise RuntimeError(f"{name}: the job exited with {code} (console: {log})")
    examples = shards.read_manifest(str(out))["splits"]["train"]["examples"]
    if examples != clips:
        raise RuntimeError(f"{name}: expected {clips} examples, the job wrote {examples} (console: {log})")
    print(f"runners: {name}: {elapsed:.1f} s, {clips / elapsed:.1f} clips/s", file=sys.stderr, flush=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=480, help="ten-second clips every job shards")
    parser.add_argument("--num-shards", type=int, default=4, help="the jobs' --num-shards")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "mygo-bench-runners"),
                        help="the clips, every job's output, cache and console, the clusters' logs")
    args = parser.parse_args()
    if args.clips < 1 or args.num_shards < 1:
        parser.error("need --clips >= 1 and --num-shards >= 1")
    # A SIGTERM (a CI timeout) unwinds like Ctrl-C, so the clusters are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    work = Path(args.work).resolve()  # the workers run in their own directories
    audio = work / f"audio{args.clips}"
    print(f"runners: {args.clips} clips in {audio} ...", file=sys.stderr, flush=True)
    csv = write_segments_csv(work / f"segments{args.clips}.csv", make_clips_on_disk(audio, args.clips))
    base = [sys.executable, "-m", "pipeline", "--segments", str(csv), "--audio-dir", str(audio), "--split", "train",
            "--num-shards", str(args.num_shards), "--log-level", "WARNING"]
    load_at_start = round(os.getloadavg()[0], 2)
    seconds: dict[str, float] = {}
    for name in DIRECT:
        seconds[name] = run_job(base, ["--workers", name.split("_")[1]], work, name, args.clips)
    for workers in DASK_WORKER_COUNTS:
        print(f"runners: starting a scheduler and {workers} Dask worker(s) ...", file=sys.stderr, flush=True)
        shutil.rmtree(work / f"dask{workers}", ignore_errors=True)
        with LocalDaskCluster(work / f"dask{workers}", workers) as cluster:
            runner = ["--runner", "DaskRunner", "--dask_client_address", cluster.address]
            for name in dask_configurations(workers):
                seconds[name] = run_job(base, runner, work, name, args.clips)
    reference = work / DIRECT[0]
    identical = {name: same_shards(work / name, reference) for name in seconds if name != DIRECT[0]}
    job_command = shlex.join(["python", *base[1:], "--out", "OUT", "--cache", "CACHE"]).replace(str(work), "WORK")
    print(json.dumps(summarise(
        seconds, args.clips, identical,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        machine={"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        command=shlex.join(["python", "-m", "benchmarks.runners", *sys.argv[1:]]),
        job_command=job_command + "  (+ --workers N, or --runner DaskRunner --dask_client_address tcp://127.0.0.1:PORT)",
        num_shards=args.num_shards, load_average_at_start=load_at_start,
        load_average_at_end=round(os.getloadavg()[0], 2))))


if __name__ == "__main__":
    main()
