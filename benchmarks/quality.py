"""Does the model learn? Pretrain for a fixed CPU budget, then probe along the way.

Prints one JSON object. On the offline corpora (``corpora/``): the pretraining set (3,000
generated 10 s clips of speech, music and scenes) goes through the real pipeline
(``python -m pipeline --audio-dir``, local files: the fetch path is not what is measured here)
into shards; each model is pretrained with LeJEPA for the same wall-clock budget on this machine
(the step count comes from a short calibration run, ``demo/budget.py``), keeping the
checkpoints at a quarter and a half of the steps; then the frozen encoder at a quarter, half and
all of the budget is probed on both labelled tasks against, in the same run, the same
architecture with random weights and log-mel mean + standard deviation features (``python -m
training probe --baselines --checkpoint-steps``):

- keywords: 20 spoken words, accuracy cross-validated over speaker-disjoint folds;
- instruments: the 16 General MIDI families, trained on one SoundFont and tested on another.

    python -m benchmarks.quality [--minutes 20] [--models tiny] [--work /tmp/mygo-quality]

Everything is kept under ``--work`` (corpora, shards, runs, probe reports), so a second call
reuses the corpora and shards and only retrains. About 10 minutes for corpora and shards, then
per model the budget plus its probes (``tiny``: about 4 minutes; ``small``: about 25 minutes, its
4,047 clips embedded four times at ~0.1 s each).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from demo.budget import measured_steps_per_second, run, steps_for_budget

log = logging.getLogger("quality")
TASKS = ("keywords", "instruments")
#: Batch per model: what fits the budget with enough steps to learn on 2 cores, and memory: ``small``
#: at batch 16 needs more than 24 GB of host RAM (its activations, ~640 MB per clip with all views).
#: Everything else (learning rate, λ, SIGReg's samples) is the trainer's default for the size.
SETTINGS = {
    "tiny": ["--batch", "32"],
    "small": ["--batch", "8"],
}
#: The CPU model: what ``make quality`` and the demo train unless told otherwise.
CPU_MODEL = "tiny"
#: Where along the budget the encoder is probed (fractions of the steps).
CURVE = {"quarter": 0.25, "half": 0.5, "full": 1.0}


def ensure_corpora(corpora: Path, size: str) -> None:
    if not all((corpora / name / "manifest.json").exists() for name in ("pretrain", *TASKS)):
        run(sys.executable, "-m", "corpora.build", "--out", str(corpora), "--size", size)


def ensure_shards(corpora: Path, shards: Path) -> dict:
    """The pretraining clips as a train split (the pipeline resumes or skips what is done)."""
    pretrain = corpora / "pretrain"
    run(sys.executable, "-m", "pipeline", "--segments", str(pretrain / "segments.csv"), "--audio-dir",
        str(pretrain / "audio"), "--split", "train", "--out", str(shards), "--cache", str(shards) + "-cache",
        "--num-shards", "8")
    return json.loads((shards / "manifest.json").read_text())["splits"]["train"]


def curve_steps(steps: int) -> dict[str, int]:
    """{point: step} of the learning curve; the budget's steps are a multiple of 4."""
    return {point: round(steps * fraction) for point, fraction in CURVE.items()}


def pretrain(model: str, shards: Path, out: Path, minutes: float) -> dict:
    """A fresh run of ``model`` sized to ``minutes``; its settings, steps, time and last metrics."""
    train_args = ["--model", model, "--precision", "float32", *SETTINGS[model]]
    rate = measured_steps_per_second(str(shards), train_args)
    steps = max(4, steps_for_budget(minutes, rate) // 4 * 4)
    shutil.rmtree(out, ignore_errors=True)
    started = time.monotonic()
    run(sys.executable, "-m", "training", "train", "--shards", str(shards), "--out", str(out), *train_args,
        "--steps", str(steps), "--checkpoint-every", str(steps // 4), "--keep-checkpoints", "5")
    seconds = time.monotonic() - started
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    return {"settings": " ".join(train_args), "calibrated_steps_per_s": round(rate, 3), "steps": steps,
            "train_seconds": round(seconds, 1),
            "final": {key: round(float(last[key]), 4) for key in
                      ("loss", "invariance", "sigreg", "embedding_std", "effective_rank", "representation_std",
                       "representation_rank")}}


def summarise(report: dict, steps: int) -> dict:
    """One task's probe report → {"lejepa": {quarter, half, full}, "random_init", "logmel_stats", "files"}."""
    points = curve_steps(steps)
    accuracy = {name: round(scores["accuracy"], 4) for name, scores in report["results"].items()}
    return {"lejepa": {point: accuracy["lejepa" if step == steps else f"lejepa@{step}"]
                       for point, step in points.items()},
            "random_init": accuracy["random_init"], "logmel_stats": accuracy["logmel_stats"],
            "files": report["files"]}


def probe(run_dir: Path, corpora: Path, reports: Path, steps: int) -> dict:
    """{task: summary} for LeJEPA along the curve, random weights and log-mel statistics."""
    earlier = [str(step) for step in curve_steps(steps).values() if step != steps]
    results = {}
    for task in TASKS:
        report = reports / f"probe-{task}.json"
        started = time.monotonic()
        run(sys.executable, "-m", "training", "probe", "--run", str(run_dir), "--audio",
            str(corpora / task / "labels.csv"), "--baselines", "--checkpoint-steps", *earlier, "--out", str(report))
        results[task] = summarise(json.loads(report.read_text()), steps)
        results[task]["probe_seconds"] = round(time.monotonic() - started, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="pretraining budget per model (wall clock)")
    parser.add_argument("--models", nargs="+", default=[CPU_MODEL], choices=list(SETTINGS))
    parser.add_argument("--work", default="/tmp/mygo-quality", help="corpora, shards, runs and reports")
    parser.add_argument("--corpus-size", default="full", choices=("small", "demo", "full"),
                        help="size of the generated corpora (small/demo: a quick check of this script)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    work = Path(args.work).resolve()
    corpora, shards = work / f"corpora-{args.corpus_size}", work / f"shards-{args.corpus_size}"
    ensure_corpora(corpora, args.corpus_size)
    split = ensure_shards(corpora, shards)
    result = {"benchmark": "quality", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d"),
              "budget_minutes_per_model": args.minutes, "pretrain_examples": split["examples"], "models": {}}
    for model in args.models:
        run_dir = work / f"run-{model}"
        entry = pretrain(model, shards, run_dir, args.minutes)
        entry["examples_seen"] = entry["steps"] * int(SETTINGS[model][1])
        entry["probes"] = probe(run_dir, corpora, run_dir, entry["steps"])
        result["models"][model] = entry
        log.info("%s: %s", model, json.dumps(entry))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
