"""Helpers of the tests that run `python -m training train` in subprocesses (their own device set-up):
the fast settings, reading a run directory, starting and watching runs, loopback cluster specs."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from tests.training.conftest import REPO

FAST = ["--model", "tiny", "--global-frames", "56", "--local-frames", "26", "--local-views", "2",
        "--directions", "64", "--shuffle-buffer", "16", "--log-every", "1"]


def metrics(run_dir) -> list[dict]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as handle:
        return [json.loads(line) for line in handle]


def checkpoints(run_dir) -> list[int]:
    return sorted(int(name[5:-6]) for name in os.listdir(os.path.join(run_dir, "checkpoints"))
                  if name.startswith("ckpt-") and name.endswith(".index"))


def output(result) -> str:
    return result.stdout + result.stderr


def start_training(*args: str) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "training", "train", *args], cwd=REPO, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_step(run_dir, step: int, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0][-4000:]
        try:
            if metrics(run_dir) and metrics(run_dir)[-1]["step"] >= step:
                return
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{run_dir} did not reach step {step}")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("127.0.0.1", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def tf_config(workers: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
