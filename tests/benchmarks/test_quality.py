"""The quality benchmark's arithmetic and report assembly. Its end-to-end run (corpora, pipeline,
20 minutes of training, probes) is ``make quality``; the learning it measures is guarded in the
suite by tests/training/test_learning.py, and the probe's ``--checkpoint-steps`` there too."""
from __future__ import annotations

import pytest

from benchmarks.quality import curve_steps, summarise
from demo.budget import steps_for_budget


def test_steps_for_budget_follows_the_measured_rate_with_a_floor():
    assert steps_for_budget(10, 0.5) == 300
    assert steps_for_budget(0.1, 0.5, least=20) == 20


def test_the_curve_is_probed_at_a_quarter_a_half_and_all_of_the_steps():
    assert curve_steps(600) == {"quarter": 150, "half": 300, "full": 600}


def report(**accuracies: float) -> dict:
    return {"files": 40, "results": {name.replace("_at_", "@"): {"accuracy": value, "accuracy_per_fold": [value]}
                                     for name, value in accuracies.items()}}


def test_a_probe_report_becomes_the_learning_curve_and_its_baselines():
    summary = summarise(report(lejepa=0.61234, lejepa_at_50=0.4, lejepa_at_100=0.5, random_init=0.3,
                               logmel_stats=0.7), steps=200)
    assert summary == {"lejepa": {"quarter": 0.4, "half": 0.5, "full": 0.6123}, "random_init": 0.3,
                       "logmel_stats": 0.7, "files": 40}


def test_a_report_without_the_curve_checkpoints_is_refused():
    with pytest.raises(KeyError, match="lejepa@50"):
        summarise(report(lejepa=0.6, random_init=0.3, logmel_stats=0.7), steps=200)
