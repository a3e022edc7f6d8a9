"""The job on Beam's Dask runner: a real scheduler and two real worker processes on 127.0.0.1.

The Dask run must write what the DirectRunner writes for the same command: the same shard bytes,
the same failures file and the same manifest entry, except the fields that say when and how the
job was launched (MANIFEST_RUN_FIELDS). A worker killed in the middle of a run costs nothing
but time: the same command then writes the same bytes, fetching nothing that is cached.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from audioshards import shards
from pipeline.local_dask import LocalDaskCluster
from tests.pipeline.test_job import pipeline_command, run_pipeline, shard_files


#: Fields of the manifest's split entry that differ between two runs of the same job: when it
#: started and ended, and the command line (the runner options). Every other field must be equal.
MANIFEST_RUN_FIELDS = {"started", "completed", "command"}
#: In failures-<split>.jsonl: when each failure happened ("time"), and the address of ffmpeg's
#: demuxer in its messages ("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d929b0ca80]"). All else byte for byte.
FFMPEG_ADDRESS = re.compile(r" @ 0x[0-9a-f]+\]")
WORKERS = 2
START_TIMEOUT_S = 60


def dask_command(*command: str, address: str) -> list[str]:
    return [*command, "--runner", "DaskRunner", "--dask_client_address", address]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalDaskCluster(tmp_path_factory.mktemp("dask"), WORKERS, start_timeout_s=START_TIMEOUT_S) as started:
        yield started


@pytest.fixture(scope="module")
def direct_run(tmp_path_factory, audio_corpus, audio_url_template):
    root = tmp_path_factory.mktemp("direct")
    run_pipeline(*pipeline_command(audio_corpus, root / "shards", root / "cache", audio_url_template))
    return root / "shards"


def split_entry(directory: Path) -> dict:
    return shards.read_manifest(str(directory))["splits"]["train"]


def failure_lines(directory: Path) -> list[str]:
    """failures-train.jsonl's lines without what differs between runs (see FFMPEG_ADDRESS)."""
    lines = []
    for line in (directory / "failures-train.jsonl").read_text().splitlines(keepends=True):
        record = json.loads(line)
        assert record.pop("time")
        record["message"] = FFMPEG_ADDRESS.sub(" @ 0x]", record["message"])
        lines.append(json.dumps(record, sort_keys=True) + "\n")
    return lines


def assert_same_output(ours: Path, reference: Path) -> None:
    """Shards and failures file byte for byte; the manifest entry except MANIFEST_RUN_FIELDS."""
    assert [p.name for p in shard_files(ours)] == [p.name for p in shard_files(reference)]
    for mine, theirs in zip(shard_files(ours), shard_files(reference), strict=True):
        assert mine.read_bytes() == theirs.read_bytes(), mine.name
    assert failure_lines(ours) == failure_lines(reference)
    entry, expected = split_entry(ours), split_entry(reference)
    assert set(entry) == set(expected)
    for field in sorted(set(expected) - MANIFEST_RUN_FIELDS - {"settings"}):
        assert entry[field] == expected[field], field
    assert run_settings(entry) == run_settings(expected)
    assert not [p for p in ours.iterdir() if ".tmp" in p.name]


def run_settings(entry: dict) -> dict:
    """The settings of a run but for where it wrote (out, cache) and its test server's address."""
    settings = {key: value for key, value in entry["settings"].items() if key not in ("out", "cache")}
    settings["fetch"] = {key: value for key, value in settings["fetch"].items() if key != "url_template"}
    return settings


def test_dask_cluster_writes_what_the_direct_runner_writes(cluster, direct_run, tmp_path, audio_corpus,
                                                           audio_server):
    out, cache = tmp_path / "shards", tmp_path / "cache"
    audio_server.reset()
    result = run_pipeline(*dask_command(*pipeline_command(audio_corpus, out, cache, audio_server.url_template),
                                        address=cluster.address))
    assert_same_output(out, direct_run)
    # The downloads happened in the worker processes (a work directory is named after its
    # process), and the console still says what was done, without Beam's metrics.
    assert audio_server.request_count
    assert "counters: none from this runner" in result.stderr
    assert f"done: {audio_corpus.expected_examples} examples in 3 train shards from {len(audio_corpus.segments)} " \
           "segments; 3 failed" in result.stderr


def test_worker_killed_mid_run_then_same_command_gives_same_bytes(cluster, direct_run, tmp_path, audio_corpus,
                                                                 make_audio_server):
    server = make_audio_server()
    out, cache = tmp_path / "shards", tmp_path / "cache"
    command = dask_command(*pipeline_command(audio_corpus, out, cache, server.url_template), address=cluster.address)
    workers = cluster.worker_pids()
    job = subprocess.Popen([*command, "--sleep-interval", "1"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        killed = None
        deadline = time.monotonic() + 120
        while killed is None:  # a worker in the middle of a download: its work directory exists
            assert job.poll() is None, "the job ended before a worker could be killed"
            assert time.monotonic() < deadline
            for work in cache.glob(".*.tmp") if cache.exists() else ():
                pid = int(work.name.rsplit(".", 2)[-2].split("-")[-2])
                if pid in workers:
                    os.kill(pid, signal.SIGKILL)
                    killed = pid
                    break
            time.sleep(0.05)
        job.wait(timeout=180)  # it completes (the scheduler gives the lost tasks to the other worker) or fails
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    cached_before = {p.name[:11] for p in cache.iterdir() if p.is_file() and ".tmp" not in p.name}
    assert cached_before
    cluster.client.wait_for_workers(WORKERS, timeout=START_TIMEOUT_S)  # the nanny restarted the killed one
    assert killed not in cluster.worker_pids()
    server.reset()
    run_pipeline(*command)
    refetched = {request.ytid for request in server.requests}
    assert not cached_before & refetched
    assert_same_output(out, direct_run)
