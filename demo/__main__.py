"""``make demo``: the whole system end to end on a small generated corpus, on a laptop CPU.

1. builds the offline corpora (speech, music, scenes from Debian and PyPI packages; a few hundred
   10 s clips for pretraining, and the keyword and instrument tasks);
2. serves the pretraining clips from a local HTTP "mirror" under their YTIDs and runs the real
   pipeline on them through the URL template (yt-dlp, ffmpeg, Beam's local runner): a train and
   an eval split;
3. trains the CPU model (``tiny``) for a few minutes;
4. probes it against random weights and log-mel statistics: AudioSet-style mAP on the eval
   shards, keyword accuracy on held-out speakers, instrument family across soundfonts;
5. exports the SavedModel, draws the pictures, and prints where everything went.

    python -m demo [--out runs/demo] [--train-minutes 4]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from benchmarks.quality import CPU_MODEL, SETTINGS
from demo.budget import REPO, measured_steps_per_second, run, steps_for_budget

log = logging.getLogger("demo")


def split_segments(csv_path: Path, train_csv: Path, eval_csv: Path, eval_every: int = 8) -> tuple[int, int]:
    """Every ``eval_every``-th row of an AudioSet-format CSV goes to eval, the rest to train."""
    lines = csv_path.read_text().splitlines()
    header = [line for line in lines if line.startswith("#")]
    rows = [line for line in lines if line and not line.startswith("#")]
    evaluation = rows[::eval_every]
    training = [row for index, row in enumerate(rows) if index % eval_every]
    train_csv.write_text("\n".join(header + training) + "\n")
    eval_csv.write_text("\n".join(header + evaluation) + "\n")
    return len(training), len(evaluation)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="everything the demo makes goes here")
    parser.add_argument("--train-minutes", type=float, default=4.0,
                        help="CPU budget for training: enough steps for pretraining to pull ahead of random weights")
    parser.add_argument("--corpus-size", default="demo", help="size of the generated corpora")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    out = (REPO / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    started = time.monotonic()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        timings[name] = round(time.monotonic() - since, 1)
        return time.monotonic()

    # 1. Corpora -------------------------------------------------------------------------------
    corpora = out / "corpora"
    step = time.monotonic()
    if not (corpora / "pretrain" / "manifest.json").exists():
        run(python, "-m", "corpora.build", "--out", str(corpora), "--size", args.corpus_size)
    step = lap("corpora", step)

    # 2. Shards through the fetch path ---------------------------------------------------------
    from pipeline.audio_server import AudioServer

    shards, cache = out / "shards", out / "cache"
    train_csv, eval_csv = out / "train_segments.csv", out / "eval_segments.csv"
    counts = split_segments(corpora / "pretrain" / "segments.csv", train_csv, eval_csv)
    with AudioServer(str(corpora / "pretrain" / "audio")) as server:
        for split, csv in (("train", train_csv), ("eval", eval_csv)):
            run(python, "-m", "pipeline", "--segments", str(csv), "--split", split, "--out", str(shards),
                "--cache", str(cache), "--url-template", server.url_template, "--num-shards", "4")
    step = lap("shards", step)

    # 3. Training ------------------------------------------------------------------------------
    training_run = out / "run"
    train_args = ["--model", CPU_MODEL, *SETTINGS[CPU_MODEL]]  # as the quality benchmark trains it
    steps = steps_for_budget(args.train_minutes, measured_steps_per_second(str(shards), train_args))
    run(python, "-m", "training", "train", "--shards", str(shards), "--out", str(training_run), *train_args,
        "--steps", str(steps), "--checkpoint-every", str(max(1, steps // 4)))
    step = lap("training", step)

    # 4. Probes --------------------------------------------------------------------------------
    reports = {}
    probes = {
        "audioset_style_eval": ["--shards", str(shards), "--eval-shards", str(shards)],
        "keywords": ["--audio", str(corpora / "keywords" / "labels.csv")],
        "instruments": ["--audio", str(corpora / "instruments" / "labels.csv")],
    }
    for name, data in probes.items():
        report = out / f"probe-{name}.json"
        run(python, "-m", "training", "probe", "--run", str(training_run), *data, "--baselines", "--out", str(report))
        reports[name] = json.loads(report.read_text())
    step = lap("probes", step)

    # 5. Export and pictures -------------------------------------------------------------------
    run(python, "-m", "training", "export", "--run", str(training_run), "--out", str(out / "saved_model"))
    run(python, "-m", "training", "viz", "--run", str(training_run), "--audio",
        str(corpora / "instruments" / "labels.csv"), "--out", str(out / "pictures"))
    lap("export and pictures", step)

    print(summary(out, counts, steps, reports, timings, time.monotonic() - started))
    return 0


def summary(out: Path, counts: tuple[int, int], steps: int, reports: dict, timings: dict, seconds: float) -> str:
    lines = ["", "MyGO demo finished in %.1f min" % (seconds / 60), ""]
    manifest = json.loads((out / "shards" / "manifest.json").read_text())
    for split in ("train", "eval"):
        info = manifest["splits"][split]
        lines.append(f"shards/{split}: {info['examples']} examples from {info['segments']} segments, "
                     f"failures {info['failures'] or 'none'}")
    lines += [f"training: {CPU_MODEL}, {steps} steps ({' '.join(SETTINGS[CPU_MODEL])})", "",
              "linear probe (same splits, same run):"]
    for name, report in reports.items():
        metric = report["metrics"][0]
        cells = "  ".join(f"{feature} {values[metric]:.3f}" for feature, values in report["results"].items())
        lead = report["results"]["lejepa"][metric] - report["results"]["random_init"][metric]
        lines.append(f"  {name:<22} {metric:<9} {cells}  (pretraining {lead:+.3f} over random weights)")
    lines += ["", "where things went:",
              f"  corpora        {out / 'corpora'}",
              f"  shards         {out / 'shards'}  (manifest.json, failures-*.jsonl)",
              f"  training run   {out / 'run'}  (config.json, checkpoints, tensorboard/, encoder/)",
              f"  probe reports  {out}/probe-*.json",
              f"  SavedModel     {out / 'saved_model'}",
              f"  pictures       {out / 'pictures'}",
              "", "time per stage (s): " + ", ".join(f"{k} {v}" for k, v in timings.items())]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
