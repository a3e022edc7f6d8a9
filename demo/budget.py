"""Run the user's command lines in child processes, and size a training run to a CPU budget.

Shared by the demo (``python -m demo``) and ``benchmarks/quality.py``: both pretrain "for N
minutes", which the trainer cannot take directly (its cosine schedule needs the step count up
front), so the throughput of *this* machine is measured first with a short run of the same
settings and the step count derived from it.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("budget")
#: Steps of the calibration run, and every how many it logs: the first log point includes
#: graph building and XLA compilation, so the rate is read from the last interval only.
CALIBRATION_STEPS = 12
CALIBRATION_LOG_EVERY = 4


def run(*command: str) -> None:
    """One step: the real command line a user would type, in a child process from the repository.
    Its output goes to stderr, so that stdout holds only the caller's own result (JSON, summary)."""
    log.info("$ %s", " ".join(command))
    subprocess.run(command, check=True, cwd=REPO, stdout=sys.stderr,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def measured_steps_per_second(shards: str, train_args: list[str]) -> float:
    """Steps per second of ``python -m training train --shards SHARDS *train_args`` on this machine,
    from a throw-away run of CALIBRATION_STEPS steps (compilation excluded)."""
    scratch = tempfile.mkdtemp(prefix="mygo-calibrate-")
    try:
        run(sys.executable, "-m", "training", "train", "--shards", shards, "--out", scratch, *train_args,
            "--steps", str(CALIBRATION_STEPS), "--log-every", str(CALIBRATION_LOG_EVERY),
            "--checkpoint-every", str(CALIBRATION_STEPS))
        rows = [json.loads(line) for line in Path(scratch, "metrics.jsonl").read_text().splitlines()]
        rate = float(rows[-1]["steps_per_s"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("calibration: %.3f steps/s", rate)
    return rate


def steps_for_budget(minutes: float, steps_per_second: float, least: int = 20) -> int:
    """Steps that fit ``minutes`` at the measured rate (at least ``least``, so the schedule has a
    warm-up and a decay even on a very slow machine)."""
    return max(least, int(minutes * 60 * steps_per_second))
