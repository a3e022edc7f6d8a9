"""The trainer's console: --log-level like the pipeline's, and TensorFlow's native start-up lines
(oneDNN notices, missing CUDA drivers, a failed cuInit) kept off it by default."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

from training.console import is_noise

REPO = pathlib.Path(__file__).resolve().parents[2]
NATIVE = re.compile(r"^([IWE]0000 |WARNING: All log messages before absl)", re.MULTILINE)


def training(*argv: str) -> subprocess.CompletedProcess:
    """A run as a user starts it: no TF_CPP_MIN_LOG_LEVEL of the test environment's."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "training", *argv], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=300)


@pytest.mark.parametrize("line, noise", [
    (b"I0000 00:00:1796200774.525050   25126 port.cc:153] oneDNN custom operations are on.", True),
    (b"E0000 00:00:1796200777.842178   25126 cuda_platform.cc:52] failed call to cuInit: INTERNAL", True),
    (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", True),
    (b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow", True),
    (b"E0000 00:00:1796200777.842178   25126 gpu_device.cc:52] out of memory", False),
    (b"W0000 00:00:1796200777.842178   25126 loader.cc:9] skipping a corrupt record", False),
    (b"Traceback (most recent call last):", False),
    (b"error: --run runs/x: no such run directory", False),
])
def test_only_start_up_notices_are_noise(line: bytes, noise: bool):
    assert is_noise(line) is noise


def test_the_filter_passes_everything_else_through_including_a_partial_line():
    script = ("import os; from training.console import filter_native_stderr; filter_native_stderr(); "
              "os.write(2, b'I0000 00:00:1.5 7 port.cc:1] noise\\nkept line\\n'); "
              "os.write(2, b'E0000 00:00:1.5 7 cuda_platform.cc:52] failed call to cuInit\\n\\rprogress 50%')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=REPO, timeout=60)
    assert result.returncode == 0
    assert result.stderr == b"kept line\n\rprogress 50%"


def test_a_failing_train_prints_its_error_and_no_native_start_up_lines(tmp_path):
    result = training("train", "--shards", str(tmp_path / "no-shards"), "--out", str(tmp_path / "run"),
                      "--steps", "1")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "no manifest.json in" in output and "INFO new run in" in output
    assert not NATIVE.search(output), NATIVE.findall(output)


def test_log_level_warning_keeps_the_trainers_info_lines_off_the_console(tmp_path, train_in_process):
    # In this process: the level is the logging set-up's (the native lines are the test above's).
    result = train_in_process("--shards", str(tmp_path / "no-shards"), "--out", str(tmp_path / "run"),
                              "--steps", "1", "--log-level", "WARNING")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "no manifest.json in" in output
    assert "INFO" not in output
    # the run directory's train.log copies the console at the chosen level too
    assert "INFO" not in (tmp_path / "run" / "train.log").read_text()


def test_an_unknown_log_level_is_refused(tmp_path):
    result = training("export", "--run", str(tmp_path), "--out", str(tmp_path / "out"), "--log-level", "LOUD")
    assert result.returncode == 2
    assert "argument --log-level: invalid choice: 'LOUD'" in result.stderr
