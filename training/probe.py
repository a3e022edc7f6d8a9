"""Linear probe of a frozen encoder: embeddings → standardised → a linear classifier.

Two kinds of labelled data:

- **Shards with labels** (AudioSet style, multi-label): fit on ``--shards`` (its train split),
  measure on ``--eval-shards`` (its eval split, or its train split when it has no eval split):
  macro mean average precision (mAP) and ROC AUC over the classes with positives in the
  evaluation set, as AudioSet papers report them. One-vs-rest logistic regression.
- **Labelled audio files**: a folder per class (``DIR/<label>/*.wav``) or a CSV
  ``path,label[,fold]`` (paths relative to the CSV; the layouts of ESC-50's and Speech Commands'
  metadata once written as such a CSV): accuracy, cross-validated leave-one-fold-out when folds
  exist, else stratified 5-fold. Each file is cut or looped into 10 s windows by the pipeline's
  own rules and front end; a file's embedding is the mean over its windows. Multinomial logistic
  regression.

``--baselines`` measures, in the same run and on the same splits, the same architecture with
random weights, and log-mel statistics (per-band mean and standard deviation over time and
channels, 512 numbers). Everything is seeded; embeddings are computed batch by batch, so memory
holds embeddings, never a whole split of spectrograms.
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

log = logging.getLogger(__name__)
BATCH = 32
Featurizer = Callable[[np.ndarray], np.ndarray]  # [B, mel, frames, channels] float → [B, D]


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


def encoder_featurizer(encoder, band_mean: np.ndarray, band_std: np.ndarray) -> Featurizer:
    """Normalise with the statistics the encoder was trained with, then its representation."""
    import tensorflow as tf

    mean = tf.constant(band_mean[:, None, None], tf.float32)
    std = tf.constant(band_std[:, None, None], tf.float32)

    @tf.function(reduce_retracing=True, autograph=False)  # straight-line code: nothing to convert
    def represent(logmel):
        return encoder((tf.cast(logmel, tf.float32) - mean) / std)

    return lambda logmel: represent(logmel).numpy()


def logmel_statistics(logmel: np.ndarray) -> np.ndarray:
    """The baseline: per-band mean and standard deviation over frames and channels → [B, 2·mel]."""
    values = np.asarray(logmel, np.float32).reshape(logmel.shape[0], logmel.shape[1], -1)
    return np.concatenate([values.mean(axis=2), values.std(axis=2)], axis=1)


def featurizers(run: str, baselines: bool, seed: int, checkpoint_steps: Iterable[int] = ()) -> dict[str, Featurizer]:
    """'lejepa' (the run's exported encoder), 'lejepa@STEP' for each of ``checkpoint_steps`` (the
    encoder at that checkpoint), and with baselines 'random_init' and 'logmel_stats'. All are
    applied to the same batches, so a learning curve costs one decode of the data."""
    import keras

    from training.export import load_checkpoint_encoder, load_encoder, normalisation
    from training.vit.model import build_models

    encoder, metadata = load_encoder(f"{run.rstrip('/')}/encoder")
    mean, std = normalisation(metadata)
    result = {"lejepa": encoder_featurizer(encoder, mean, std)}
    for step in checkpoint_steps:
        result[f"lejepa@{step}"] = encoder_featurizer(load_checkpoint_encoder(run, step), mean, std)
    if baselines:
        keras.utils.set_random_seed(seed)
        random_encoder, _ = build_models(encoder.config, mels=encoder.mels, channels=encoder.channels)
        result["random_init"] = encoder_featurizer(random_encoder, mean, std)
        result["logmel_stats"] = logmel_statistics
    return result


def embed(batches: Iterable[np.ndarray], featurize: dict[str, Featurizer], what: str) -> dict[str, np.ndarray]:
    """Each featurizer applied to every batch, concatenated: {name: [N, D]}."""
    from tqdm import tqdm

    parts: dict[str, list[np.ndarray]] = {name: [] for name in featurize}
    for batch in tqdm(batches, desc=f"embedding {what}", unit=" batches", disable=None):
        for name, function in featurize.items():
            parts[name].append(np.asarray(function(batch), np.float32))
    return {name: np.concatenate(values) for name, values in parts.items()}


# --------------------------------------------------------------------------------------------
# Shards (multi-label)
# --------------------------------------------------------------------------------------------


def shard_batches(directory: str, split: str, labels_out: list[tuple[int, ...]]) -> Iterator[np.ndarray]:
    """Log-mel batches of one split, in manifest order; appends each example's labels."""
    from audioshards import shards

    manifest = shards.read_manifest(directory)
    if manifest is None:
        raise FileNotFoundError(f"{directory} has no manifest.json: not a shard directory")
    if split not in manifest["splits"]:
        raise ValueError(f"{directory} has no {split} split (it has {sorted(manifest['splits'])})")
    shape = tuple(manifest["example"]["shape"])
    batch: list[np.ndarray] = []
    for entry in manifest["splits"][split]["shards"]:
        for example in shards.read_examples(f"{directory.rstrip('/')}/{entry['file']}", shape):
            batch.append(example.logmel)
            labels_out.append(example.labels)
            if len(batch) == BATCH:
                yield np.stack(batch)
                batch = []
    if batch:
        yield np.stack(batch)


def multi_hot(labels: list[tuple[int, ...]], classes: int) -> np.ndarray:
    target = np.zeros((len(labels), classes), np.int8)
    for row, indices in enumerate(labels):
        target[row, list(indices)] = 1
    return target


def multilabel_scores(train_x, train_y, test_x, test_y, seed: int) -> dict[str, float]:
    """mAP and AUC of one-vs-rest logistic regression on standardised features; classes with no
    positive in the training set are predicted with score 0."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    train_x, test_x = scaler.transform(train_x), scaler.transform(test_x)
    scores = np.zeros(test_y.shape, np.float64)
    for label in np.flatnonzero(train_y.any(axis=0) & ~train_y.all(axis=0)):
        model = LogisticRegression(max_iter=1000, random_state=seed).fit(train_x, train_y[:, label])
        scores[:, label] = model.decision_function(test_x)
    present = np.flatnonzero(test_y.any(axis=0))
    both = [c for c in present if not test_y[:, c].all()]
    return {
        "mAP": float(np.mean([average_precision_score(test_y[:, c], scores[:, c]) for c in present])),
        "AUC": float(np.mean([roc_auc_score(test_y[:, c], scores[:, c]) for c in both])) if both else float("nan"),
        "classes_evaluated": len(present),
    }


def probe_shards(shards_dir: str, eval_dir: str, featurize: dict[str, Featurizer], seed: int) -> dict:
    from audioshards import shards

    train_labels: list[tuple[int, ...]] = []
    train = embed(shard_batches(shards_dir, "train", train_labels), featurize, "train")
    eval_manifest = shards.read_manifest(eval_dir) or {"splits": {}}
    eval_split = "eval" if "eval" in eval_manifest["splits"] else "train"
    eval_labels: list[tuple[int, ...]] = []
    test = embed(shard_batches(eval_dir, eval_split, eval_labels), featurize, eval_split)
    classes = len(shards.read_manifest(shards_dir)["labels"])
    train_y, test_y = multi_hot(train_labels, classes), multi_hot(eval_labels, classes)
    if not train_y.any():
        raise ValueError(f"{shards_dir} has no labels: a linear probe needs labelled examples")
    results = {name: multilabel_scores(train[name], train_y, test[name], test_y, seed) for name in featurize}
    return {"task": f"shards {shards_dir} → {eval_dir} ({eval_split})", "kind": "multi-label",
            "train_examples": len(train_labels), "eval_examples": len(eval_labels), "metrics": ["mAP", "AUC"],
            "results": results}


# --------------------------------------------------------------------------------------------
# Labelled audio files (single-label)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledFile:
    path: str
    label: str
    fold: str | None


def read_labelled_audio(source: str) -> list[LabelledFile]:
    """A folder per class, or a CSV ``path,label[,fold]`` with a header row (paths relative to it)."""
    from audioshards import storage
    from audioshards.audio import AUDIO_EXTENSIONS

    location = Path(source)
    if location.is_dir():
        files = [LabelledFile(str(location / relative), relative.split("/")[0], None)
                 for relative in storage.list_files(source, AUDIO_EXTENSIONS) if "/" in relative]
    elif location.is_file():
        import pandas as pd

        table = pd.read_csv(location, dtype=str)
        missing = {"path", "label"} - set(table.columns)
        if missing:
            raise ValueError(f"{source}: needs columns path,label[,fold]; missing {sorted(missing)}")
        folds = table["fold"] if "fold" in table.columns else [None] * len(table)
        files = [LabelledFile(str(location.parent / path), label, fold)
                 for path, label, fold in zip(table["path"], table["label"], folds)]
    else:
        raise FileNotFoundError(f"--audio {source}: no such folder or CSV")
    if len({f.label for f in files}) < 2:
        raise ValueError(f"{source}: a probe needs at least two classes, found {sorted({f.label for f in files})}")
    return files


def file_windows(files: list[LabelledFile], owners: list[int], skipped: list[dict]) -> Iterator[np.ndarray]:
    """Log-mel windows of every file (pipeline decoding, clip rules and front end), in batches;
    appends the index of the file each window came from to ``owners``. A file that does not
    decode or makes no clip (silent, too short) is logged and appended to ``skipped`` with the
    reason, so one bad file in a folder of thousands does not throw the embedding work away."""
    from audioshards.audio import ClipSettings, DecodeError, DecodeRequest, UnusableAudio, decode_many, make_clips
    from audioshards.spectrogram import DEFAULT_CONFIG, log_mel

    batch: list[np.ndarray] = []
    for first in range(0, len(files), 16):
        chunk = files[first : first + 16]
        for offset, audio in enumerate(decode_many([DecodeRequest(f.path) for f in chunk], DEFAULT_CONFIG)):
            try:
                if isinstance(audio, DecodeError):
                    raise audio
                clips = make_clips(audio, DEFAULT_CONFIG, ClipSettings())
            except (DecodeError, UnusableAudio) as error:
                log.warning("skipping %s: %s", chunk[offset].path, error)
                skipped.append({"path": chunk[offset].path, "reason": str(error)})
                continue
            for clip in clips:
                batch.append(log_mel(clip).astype(np.float16))
                owners.append(first + offset)
                if len(batch) == BATCH:
                    yield np.stack(batch)
                    batch = []
    if batch:
        yield np.stack(batch)


def mean_per_file(windows: np.ndarray, owners: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the files that made windows, the mean of each one's windows)."""
    owners_array = np.asarray(owners)
    kept = np.unique(owners_array)
    return kept, np.stack([windows[owners_array == index].mean(axis=0) for index in kept])


def accuracy_by_folds(features: np.ndarray, labels: np.ndarray, folds: np.ndarray | None, seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if folds is not None:
        splits = [(np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)) for fold in np.unique(folds)]
    else:
        splits = list(StratifiedKFold(5, shuffle=True, random_state=seed).split(features, labels))
    accuracies = []
    for train, test in splits:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
        model.fit(features[train], labels[train])
        accuracies.append(float((model.predict(features[test]) == labels[test]).mean()))
    return {"accuracy": float(np.mean(accuracies)), "accuracy_per_fold": accuracies}


def probe_audio(source: str, featurize: dict[str, Featurizer], seed: int) -> dict:
    files = read_labelled_audio(source)
    owners: list[int] = []
    skipped: list[dict] = []
    windows = embed(file_windows(files, owners, skipped), featurize, "audio")
    kept = np.unique(owners)
    labels = np.asarray([files[index].label for index in kept])
    folds = np.asarray([files[index].fold for index in kept]) if files[0].fold is not None else None
    results = {name: accuracy_by_folds(mean_per_file(values, owners)[1], labels, folds, seed)
               for name, values in windows.items()}
    return {"task": f"audio {source}", "kind": "single-label", "files": len(kept), "classes": len(set(labels)),
            "skipped": skipped, "validation": "leave-one-fold-out" if folds is not None else "stratified 5-fold",
            "metrics": ["accuracy"], "results": results}


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="training run directory (its encoder/ export is probed)")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--shards", help="labelled shard directory to fit on (its train split)")
    data.add_argument("--audio", help="labelled audio: a folder per class, or a CSV path,label[,fold]")
    parser.add_argument("--eval-shards", help="shard directory to measure on (its eval split; default --shards)")
    parser.add_argument("--baselines", action="store_true", help="also random weights and log-mel statistics")
    parser.add_argument("--checkpoint-steps", type=int, nargs="+", default=[], metavar="STEP",
                        help="also the encoder at these checkpoints of the run (a learning curve), as lejepa@STEP")
    parser.add_argument("--out", help="write the report as JSON here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random-weights baseline and the folds")


def run(args: argparse.Namespace) -> dict:
    featurize = featurizers(args.run, args.baselines, args.seed, args.checkpoint_steps)
    if args.shards:
        report = probe_shards(args.shards, args.eval_shards or args.shards, featurize, args.seed)
    else:
        report = probe_audio(args.audio, featurize, args.seed)
    report["run"] = args.run
    print(format_table(report))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return report


def format_table(report: dict) -> str:
    metrics = report["metrics"]
    lines = [report["task"], f"{'features':<14}" + "".join(f"{m:>10}" for m in metrics)]
    for name, values in report["results"].items():
        lines.append(f"{name:<14}" + "".join(f"{values[m]:>10.4f}" for m in metrics))
    return "\n".join(lines)
