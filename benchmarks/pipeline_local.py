"""Clips per second of the sharding job, CPU seconds per clip, and where the time goes.

Generates N ten-second clips (FLAC, 44.1 kHz stereo: resampling included) named like YouTube ids,
then, in one run on the same machine:

1. times each stage on one core in this process (ffmpeg decode, chunking, log-mel, serialise,
   write), and one yt-dlp section download per clip from the local mirror (``fetch``: yt-dlp,
   its ffmpeg stream copy and the check decode, what the yt-dlp path adds before the decode);
2. runs the real job (``python -m pipeline``, DirectRunner)
   - on the local source (``--audio-dir``) with 1 and 2 workers, and
   - on the yt-dlp path with 1 worker: the first ``--ytdlp-clips`` clips served over HTTP on
     127.0.0.1 by :mod:`pipeline.audio_server` (the mirror the tests and the demo use), reached
     through ``--segments`` and ``--url-template``, with a fresh cache, so every clip is
     downloaded with yt-dlp. It costs ~0.6 core-s per clip, so it gets fewer clips than the
     local jobs, and one worker count only, to keep ``make bench`` within its 15 minutes; the
     in-process ``fetch`` timing above breaks its extra cost down.

For each job: wall-clock clips/s (start-up included) and **CPU seconds per clip**: user + sys of
the job's whole process tree (launcher, Beam workers, the ffmpeg processes they start), from
``getrusage(RUSAGE_CHILDREN)`` before and after it. A 1-clip job per worker count measures the
start-up (importing Beam, TensorFlow and numba in the launcher and in every worker: many CPU
seconds), and ``..._after_startup`` is each job minus it: the rate of a long job.

The machine's 2 cores are shared with other jobs, so wall-clock clips/s and the 2-worker scaling
depend on what else runs; CPU seconds per clip depend on it much less and are the figures that
carry over (``cpu_ms_per_clip*`` keys; the one-core rate they imply is
``*_clips_per_s_per_core_from_cpu``). The load average at the start and end is in the JSON.
``*_scaling_efficiency_2_vs_1`` is (clips/s with 2 workers) / (clips/s with 1) / 2;
``ytdlp_extra_ms_per_clip_1_workers`` is the yt-dlp job's time (wall) and CPU per clip after
start-up minus the local job's. The mirror runs in this process; its CPU
(``mirror_cpu_ms_per_clip``) stands in for YouTube's and is not counted in the job's.

Prints one JSON object:

    python -m benchmarks.pipeline_local [--clips 120] [--ytdlp-clips 40] [--workdir /tmp/mygo-bench-pipeline]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from audioshards import shards
from audioshards.audio import ClipSettings, DecodeRequest, decode_many, make_clips
from pipeline.audio_server import AudioServer
from pipeline.fetch import FetchConfig, fetch_segment
from pipeline.job import DECODE_BATCH
from audioshards.spectrogram import DEFAULT_CONFIG, log_mel

CLIP_SECONDS = 10.0
LABEL = "/m/09x0r"  # Speech: any mid of the vocabulary does
# The mirror is on 127.0.0.1: a proxy from the environment must not be asked for it.
NO_PROXY = "127.0.0.1,localhost"


def ytid(index: int) -> str:
    """An id of YouTube's form (11 characters), so the clips can be served to yt-dlp as they are."""
    return f"clip{index:07d}"


def make_clips_on_disk(directory: Path, count: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)

    def one(index: int) -> Path:
        path = directory / f"{ytid(index)}.flac"
        if not path.exists():
            subprocess.run(
                ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                 f"sine=frequency={200 + 7 * index}:sample_rate=44100:duration={CLIP_SECONDS:g}", "-f", "lavfi",
                 "-i", "anoisesrc=color=pink:amplitude=0.05:sample_rate=44100:duration=%g:seed=%d" % (CLIP_SECONDS, index),
                 "-filter_complex", "amix=inputs=2,aformat=channel_layouts=stereo", "-c:a", "flac", str(path)],
                check=True)
        return path

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(one, range(count)))


def write_segments_csv(path: Path, paths: list[Path]) -> Path:
    """The clips as AudioSet segment rows [0, 10 s], in AudioSet's CSV format."""
    rows = [f'{clip.stem}, 0.000, {CLIP_SECONDS:.3f}, "{LABEL}"' for clip in paths]
    path.write_text("# Segments csv written by benchmarks/pipeline_local.py\n"
                    f"# num_ytids={len(rows)}, num_segs={len(rows)}\n"
                    "# YTID, start_seconds, end_seconds, positive_labels\n" + "\n".join(rows) + "\n")
    return path


def stage_times(paths: list[Path], out: Path) -> dict[str, float]:
    """Milliseconds per clip of each stage, one core, in this process, as the job runs them
    (decoding a batch of DECODE_BATCH files per ffmpeg process)."""
    totals = dict.fromkeys(("decode", "chunk", "features", "serialise", "write"), 0.0)
    warm = shards.ClipExample("warm-up", "warm-up", 0.0, 10.0, 0, (), np.zeros(DEFAULT_CONFIG.shape, np.float16))
    warm.serialize()  # imports TensorFlow outside the timing
    # The first log-mel builds the mel filterbank and loads the numba kernels: ~1 s once per
    # process, part of a worker's start-up, not of each clip.
    log_mel(np.zeros((DEFAULT_CONFIG.clip_samples, DEFAULT_CONFIG.channels), np.float32))
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


def fetch_time(paths: list[Path], url_template: str, cache: Path) -> dict[str, float]:
    """Wall and CPU milliseconds per clip of ``fetch_segment`` (yt-dlp's section download from the
    mirror, its ffmpeg, the check decode), one clip after another in this process."""
    shutil.rmtree(cache, ignore_errors=True)
    config = FetchConfig(url_template=url_template, retries=1)
    fetch_segment(paths[0].stem, 0.0, CLIP_SECONDS, str(cache / "warm-up"), config)  # imports yt-dlp
    before, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    for path in paths:
        result = fetch_segment(path.stem, 0.0, CLIP_SECONDS, str(cache), config)
        assert result.failure is None and not result.cached, result
    elapsed = time.perf_counter() - before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    mine = resource.getrusage(resource.RUSAGE_SELF)
    own_cpu = (mine.ru_utime - own.ru_utime) + (mine.ru_stime - own.ru_stime)
    return {"fetch_ms_per_clip": round(1e3 * elapsed / len(paths), 1),
            "fetch_ffmpeg_cpu_ms_per_clip": round(1e3 * child_cpu / len(paths), 1),
            "fetch_ytdlp_and_mirror_cpu_ms_per_clip": round(1e3 * own_cpu / len(paths), 1)}


def run_job(arguments: list[str], out: Path, workers: int, count: int, mirror: AudioServer | None = None) -> dict[str, float]:
    """Runs ``python -m pipeline`` once; wall-clock clips/s and CPU seconds of its process tree.

    RUSAGE_CHILDREN counts every descendant that was waited for (Beam's worker processes, the
    ffmpeg and yt-dlp work they start), so the delta around the run is the job's CPU time. With
    ``mirror`` (the job fetches from it) this process's CPU during the run is the mirror's."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(str(out) + "-cache", ignore_errors=True)  # a fresh cache: every clip fetched again
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pipeline", *arguments, "--split", "train", "--out", str(out),
         "--cache", str(out) + "-cache", "--workers", str(workers), "--num-shards", str(2 * workers),
         "--log-level", "WARNING"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    in_this_process = (self_after.ru_utime - self_before.ru_utime) + (self_after.ru_stime - self_before.ru_stime)
    manifest = shards.read_manifest(str(out))["splits"]["train"]
    assert manifest["examples"] == count, f"expected {count} examples, the job wrote {manifest['examples']}: {manifest['failures']}"
    result = {"seconds": round(elapsed, 2), "clips_per_s": round(count / elapsed, 2),
              "clips_per_s_per_worker": round(count / elapsed / workers, 2),
              "cpu_s": round(cpu, 1), "cpu_ms_per_clip": round(1e3 * cpu / count, 1),
              "cores_busy": round(cpu / elapsed, 2)}
    if mirror is not None:
        result["mirror_cpu_ms_per_clip"] = round(1e3 * in_this_process / count, 1)
    return result


def after_startup(job: dict[str, float], startup: dict[str, float], count: int) -> dict[str, float | None]:
    """The job's rate once started: its time and CPU minus those of the 1-clip job with as many
    workers (Beam, TensorFlow and numba start-up in the launcher and in every worker)."""
    seconds = job["seconds"] - startup["seconds"]
    cpu_ms = (1e3 * job["cpu_s"] - 1e3 * startup["cpu_s"]) / (count - 1)
    return {"clips_per_s_after_startup": round((count - 1) / seconds, 2) if seconds > 0 else None,
            "cpu_ms_per_clip_after_startup": round(cpu_ms, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=120, help="clips of the local-source jobs")
    parser.add_argument("--ytdlp-clips", type=int, default=40,
                        help="clips of the yt-dlp job (1 worker): ~0.6 core-s each, so fewer than the local jobs")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "mygo-bench-pipeline"))
    args = parser.parse_args()
    if not 2 <= args.ytdlp_clips <= args.clips:
        parser.error("need 2 <= --ytdlp-clips <= --clips")
    work = Path(args.workdir)
    audio = work / f"audio{args.clips}"  # exactly the clips of this size: the local job reads the whole directory
    paths = make_clips_on_disk(audio, args.clips)
    one_clip = work / "audio1"
    make_clips_on_disk(one_clip, 1)
    csv = write_segments_csv(work / f"segments{args.ytdlp_clips}.csv", paths[: args.ytdlp_clips])
    stages = stage_times(paths[: min(64, len(paths))], work)
    result = {"benchmark": "pipeline_local", "clips": args.clips, "ytdlp_clips": args.ytdlp_clips,
              "cores": os.cpu_count(), "load_average_at_start": round(os.getloadavg()[0], 2), **stages,
              "stage_total_ms_per_clip": round(sum(stages.values()), 2)}
    result["stage_clips_per_s_one_core"] = round(1e3 / result["stage_total_ms_per_clip"], 1)
    os.environ.update(NO_PROXY=NO_PROXY, no_proxy=NO_PROXY)  # for the jobs and this process's fetches
    with AudioServer(str(audio)) as server:
        result.update(fetch_time(paths[: min(16, len(paths))], server.url_template, work / "fetch-cache"))
        for workers in (1, 2):
            startup = run_job(["--audio-dir", str(one_clip)], work / f"startup{workers}", workers, 1)
            result[f"startup_{workers}_workers"] = {key: startup[key] for key in ("seconds", "cpu_s")}
            job = run_job(["--audio-dir", str(audio)], work / f"job{workers}", workers, args.clips)
            result[f"job_{workers}_workers"] = {**job, **after_startup(job, startup, args.clips)}
            if workers == 1:
                job = run_job(["--segments", str(csv), "--url-template", server.url_template], work / "ytdlp_job1",
                              1, args.ytdlp_clips, server)
                result["ytdlp_job_1_workers"] = {**job, **after_startup(job, startup, args.ytdlp_clips)}
    result["load_average_at_end"] = round(os.getloadavg()[0], 2)
    one, two = result["job_1_workers"], result["job_2_workers"]
    result["job_scaling_efficiency_2_vs_1"] = round(two["clips_per_s"] / one["clips_per_s"] / 2, 2)
    if one["clips_per_s_after_startup"] and two["clips_per_s_after_startup"]:
        result["job_scaling_efficiency_2_vs_1_after_startup"] = round(
            two["clips_per_s_after_startup"] / one["clips_per_s_after_startup"] / 2, 2)
    for source in ("job", "ytdlp_job"):
        result[f"{source}_clips_per_s_per_core_from_cpu"] = round(
            1e3 / result[f"{source}_1_workers"]["cpu_ms_per_clip_after_startup"], 1)
    local, ytdlp = result["job_1_workers"], result["ytdlp_job_1_workers"]
    if local["clips_per_s_after_startup"] and ytdlp["clips_per_s_after_startup"]:
        result["ytdlp_extra_ms_per_clip_1_workers"] = {
            "wall": round(1e3 / ytdlp["clips_per_s_after_startup"] - 1e3 / local["clips_per_s_after_startup"], 1),
            "cpu": round(ytdlp["cpu_ms_per_clip_after_startup"] - local["cpu_ms_per_clip_after_startup"], 1)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
