"""The quality benchmark end to end on the small corpora (built once per session, see conftest):
real pipeline, real calibration and training of ``tiny``, real probes. What a user reads off its
JSON must hold."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.budget import steps_for_budget

REPO = Path(__file__).resolve().parents[2]


def test_steps_for_budget_follows_the_measured_rate_with_a_floor():
    assert steps_for_budget(10, 0.5) == 300
    assert steps_for_budget(0.1, 0.5, least=20) == 20


def test_quality_benchmark_reports_lejepa_against_both_baselines_on_both_tasks(corpora, tmp_path):
    os.symlink(corpora[0], tmp_path / "corpora-small")  # the benchmark builds corpora only when missing
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.quality", "--models", "tiny", "--minutes", "0.3",
         "--corpus-size", "small", "--work", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout)  # stdout holds the JSON and nothing else

    assert result["benchmark"] == "quality" and result["budget_minutes_per_model"] == 0.3
    corpus = json.loads((tmp_path / "corpora-small" / "pretrain" / "manifest.json").read_text())
    assert result["pretrain_examples"] == corpus["clips"]  # 10 s clips: one example each
    tiny = result["models"]["tiny"]
    assert tiny["steps"] == steps_for_budget(0.3, tiny["calibrated_steps_per_s"])
    metrics = [json.loads(line) for line in (tmp_path / "run-tiny" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == tiny["steps"]  # the run trained exactly the budgeted steps
    assert tiny["examples_seen"] == tiny["steps"] * 32
    for task, classes in (("keywords", 20), ("instruments", 16)):
        probes = tiny["probes"][task]
        assert set(probes) >= {"lejepa", "random_init", "logmel_stats"}
        assert all(0.0 <= probes[name] <= 1.0 for name in ("lejepa", "random_init", "logmel_stats"))
        report = json.loads((tmp_path / "run-tiny" / f"probe-{task}.json").read_text())
        assert report["classes"] == classes and probes["files"] == report["files"]
        assert probes["logmel_stats"] == round(report["results"]["logmel_stats"]["accuracy"], 4)
