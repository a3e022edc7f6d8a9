"""The job's decode limits end to end (python -m pipeline, real Beam, ffmpeg): --max-seconds reaches
the decoder both ways, and a decode error is recorded with its own reason and permanence."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.signals import write_tone

REPOSITORY = Path(__file__).resolve().parents[2]
#: Longer than the decoder's default cap (600 s); 8 kHz mono keeps the file small and quick to make.
LONG_S = 605.0


@pytest.fixture(scope="module")
def long_source_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An --audio-dir holding one source of 605 s."""
    directory = tmp_path_factory.mktemp("long")
    write_tone(directory / "long.flac", LONG_S, frequency=440, rate=8_000)
    return directory


def run_job(audio_dir: Path, out: Path, *extra: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Runs the job over ``audio_dir``; returns the failures by file and the split's manifest entry."""
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "--audio-dir", str(audio_dir), "--split", "train", "--out", str(out),
         "--cache", str(out.parent / "cache"), "--workers", "1", "--direct_running_mode", "in_memory",
         "--num-shards", "1", *extra],
        capture_output=True, text=True, timeout=600,
        env={"PYTHONPATH": str(REPOSITORY), "PATH": "/usr/bin:/bin", "HOME": str(out.parent)})
    assert result.returncode == 0, result.stderr[-4000:]
    lines = (out / "failures-train.jsonl").read_text().splitlines()
    failures = {json.loads(line)["ytid"]: json.loads(line) for line in lines}
    return failures, json.loads((out / "manifest.json").read_text())["splits"]["train"]


def test_a_raised_max_seconds_decodes_a_source_longer_than_the_default_cap(long_source_dir, tmp_path):
    """The decoder's own default is 600 s: the job must hand it --max-seconds, or a raised cap is
    refused at decode time as too long."""
    failures, split = run_job(long_source_dir, tmp_path / "shards", "--max-seconds", "620")
    assert failures == {}
    assert split["examples"] == 61  # 60 clips of 10 s, and the 5 s remainder looped to one


def test_a_source_over_the_cap_is_a_permanent_too_long_failure(long_source_dir, tmp_path):
    """The decoder refuses it (SourceTooLong): recorded as too_long, not as an unreadable file."""
    failures, split = run_job(long_source_dir, tmp_path / "shards")
    assert set(failures) == {"long.flac"}
    assert (failures["long.flac"]["reason"], failures["long.flac"]["permanent"]) == ("too_long", True)
    assert "longer than 600 s" in failures["long.flac"]["message"]
    assert split["examples"] == 0 and split["failures"] == {"too_long": 1}


def test_a_decode_that_hangs_is_a_transient_timeout_failure(tmp_path):
    """A FIFO named .wav blocks ffmpeg in open(): --decode-timeout stops it, and the file is a
    transient timeout (the next run tries again), while the other file of its batch is decoded."""
    audio = tmp_path / "audio"
    audio.mkdir()
    write_tone(audio / "good.wav", 10.0, frequency=440)
    os.mkfifo(audio / "x.wav")
    failures, split = run_job(audio, tmp_path / "shards", "--decode-timeout", "1")
    assert set(failures) == {"x.wav"}
    assert (failures["x.wav"]["reason"], failures["x.wav"]["permanent"]) == ("timeout", False)
    assert "ran longer than 1 s" in failures["x.wav"]["message"]
    assert split["examples"] == 1 and split["failures"] == {"timeout": 1}
