"""SIGTERM saves a checkpoint and the same command resumes where it stopped, like an uninterrupted run."""
import json
import signal

import pytest

from tests.training.conftest import run_training
from tests.training.runs import FAST, checkpoints, metrics, output, start_training, wait_for_step


def test_sigterm_checkpoints_and_a_restart_continues_like_an_uninterrupted_run(shard_dir, tmp_path):
    args = ["--shards", str(shard_dir), "--batch", "4", "--steps", "12", "--checkpoint-every", "100",
            "--deterministic", *FAST]
    uninterrupted = start_training("--out", str(tmp_path / "whole"), *args)
    interrupted = start_training("--out", str(tmp_path / "parts"), *args)
    try:
        wait_for_step(tmp_path / "parts", 3, interrupted)
        interrupted.send_signal(signal.SIGTERM)
        log = interrupted.communicate(timeout=120)[0]
    finally:
        interrupted.kill()
    assert interrupted.returncode == 128 + signal.SIGTERM, log[-4000:]
    stopped_at = metrics(tmp_path / "parts")[-1]["step"]
    assert stopped_at < 12 and checkpoints(tmp_path / "parts") == [stopped_at]
    assert "stopped by SIGTERM" in log and "run the same command again to resume" in log
    assert json.loads((tmp_path / "parts" / "encoder" / "encoder.json").read_text())["step"] == stopped_at

    resumed = run_training("train", "--out", str(tmp_path / "parts"))  # settings from RUN_DIR/config.json
    assert resumed.returncode == 0, output(resumed)[-4000:]
    assert f"resumed from {tmp_path / 'parts'}/checkpoints/ckpt-{stopped_at} at step {stopped_at}" in resumed.stdout
    assert uninterrupted.wait(timeout=180) == 0, uninterrupted.communicate()[0][-4000:]

    whole, parts = metrics(tmp_path / "whole"), metrics(tmp_path / "parts")
    assert [row["step"] for row in parts] == list(range(1, 13))  # continues at the next step
    for a, b in zip(whole, parts):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), (a["step"], a["loss"], b["loss"])
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
