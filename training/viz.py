"""Pictures of what a run learned, as PNG files with matplotlib, and in the run's TensorBoard.

``python -m training viz --run RUN_DIR [--shards SHARD_DIR | --audio DIR_OR_CSV] [--probe FILE] --out PICTURE_DIR``
writes:

- ``training.png``: the training curves, read from the run's TensorBoard event files (one panel
  per scalar; a scalar that never changed gets none). Needs nothing but the run.
- ``probe.png``: the linear probe against its baselines, one bar per feature set (``lejepa``,
  ``lejepa@STEP``, ``random_init``, ``logmel_stats``) in one panel per metric (mAP and AUC, or
  accuracy with each fold as a dot), with chance level where it is known; from ``--probe FILE``,
  else from ``RUN_DIR/probe.json`` when there (``make probe`` writes it).
- with labelled data, ``pca.png``: the first two principal components of the encoder's embeddings,
  coloured by label (the 19 most frequent labels, the others in grey); and
  ``attention-<label>-<name>.png``: for the first clip of each of the six most frequent labels,
  the ``[CLS]`` attention of the last block over the frequency × time patch grid, drawn over the
  clip's log-mel (first channel, first 10 s window). The attention is shown relative to uniform:
  each patch's share of the attention [CLS] gives the patches, times the number of patches, so 1
  is a uniform map, on a fixed logarithmic colour scale from 0.1 to 10 times uniform (values
  beyond in the end colours). A map that is uniform up to noise therefore looks uniform, whatever
  its absolute values, and a peaked one shows its peaks' sizes rather than its own range.

The labelled data is either

- ``--shards SHARD_DIR`` (AudioSet style): the clips of its eval split (its train split when it
  has none), in manifest order, at most ``--max-clips`` of them (2000 by default), with the label
  names of the manifest's vocabulary. AudioSet clips have several labels: a clip is coloured by
  the one of its labels that is most frequent among the clips read (ties: the first in the
  vocabulary), so the legend's classes are the data's largest; the attention picture of a label
  is of the first clip that carries it.
- ``--audio DIR_OR_CSV``: a folder per class or a CSV ``path,label[,fold]``, as for the probe; a
  file's embedding is the mean of its 10 s windows. At most ``--max-clips`` files, evenly spaced
  through the list when there are more.

Every picture is also written as an image summary (tag ``pictures/<name>``, at the encoder's step)
into ``RUN_DIR/tensorboard/viz``, and the embeddings with their labels into TensorBoard's
projector there (a checkpoint of the embedding variable, ``metadata.tsv`` with one row per clip
after a header row, ``projector_config.pbtxt``), unless ``--no-tensorboard``:
``tensorboard --logdir RUN_DIR/tensorboard`` shows them as the run ``viz`` (tabs Images and
Projector).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
MAX_ATTENTION_PICTURES = 6
MAX_CLIPS = 2000
#: The attention colour scale, in multiples of the uniform share, logarithmic: a tenth to ten times.
ATTENTION_RANGE = (0.1, 10.0)
#: Labels with a colour of their own in the PCA; the others share grey.
MAX_COLOURED_LABELS = 19
VIZ_LOG_DIR = "viz"  # under RUN_DIR/tensorboard
#: The projector's tensor: the name tf.train.Checkpoint gives the variable ``embedding``.
EMBEDDING_TENSOR = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
NO_LABEL = "(no label)"
_NUMBERS = {1, 2, 3, 9, 19}  # TensorFlow's DataType enum: float, double, int32, int64, half


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------------


def pca_picture(embeddings: np.ndarray, labels: list[str], path: str, title: str) -> str:
    """Clips coloured by label, the most frequent first; beyond MAX_COLOURED_LABELS, grey."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    if len(embeddings) < 2:
        raise ValueError(f"a PCA needs at least two embedded clips, got {len(embeddings)}")
    plt = _pyplot()
    pca = PCA(n_components=2, random_state=0)
    points = pca.fit_transform(StandardScaler().fit_transform(embeddings))
    counts = Counter(labels)
    order = sorted(counts, key=lambda label: (-counts[label], label))
    coloured = order if len(order) <= MAX_COLOURED_LABELS + 1 else order[:MAX_COLOURED_LABELS]
    colours = plt.cm.tab10 if len(coloured) <= 10 else plt.cm.tab20
    figure, axes = plt.subplots(figsize=(9, 6))
    labels_array = np.asarray(labels)
    others = ~np.isin(labels_array, coloured)
    if others.any():
        axes.scatter(points[others, 0], points[others, 1], s=10, color="0.75",
                     label=f"{len(order) - len(coloured)} other labels ({others.sum()})")
    for index, label in enumerate(coloured):
        chosen = labels_array == label
        axes.scatter(points[chosen, 0], points[chosen, 1], s=18, label=f"{label} ({chosen.sum()})",
                     color=colours(index % colours.N))
    variance = pca.explained_variance_ratio_ * 100
    axes.set_xlabel(f"PC 1 ({variance[0]:.0f} % of variance)")
    axes.set_ylabel(f"PC 2 ({variance[1]:.0f} % of variance)")
    axes.set_title(title, fontsize="medium")
    axes.legend(fontsize="small", markerscale=1.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def relative_attention(attention: np.ndarray) -> np.ndarray:
    """Each patch's share of the attention to the patches, times the number of patches: 1 is uniform.
    (The [CLS] token's attention to itself is left out; a map of zeros is taken as uniform.)"""
    attention = np.asarray(attention, np.float64)
    total = attention.sum()
    return attention * (attention.size / total) if total > 0 else np.ones_like(attention)


def attention_picture(logmel: np.ndarray, attention: np.ndarray, path: str, title: str,
                      patch: int = 16, stride: int = 10) -> str:
    """``logmel`` [mel, frames] dB, ``attention`` [rows, columns] over the patch grid, drawn relative to
    uniform on a fixed logarithmic scale (ATTENTION_RANGE): the colours do not depend on the map's own range."""
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import FixedLocator, FuncFormatter

    plt = _pyplot()
    mels, frames = logmel.shape
    rows, columns = attention.shape
    figure, axes = plt.subplots(figsize=(9, 5))
    image = axes.imshow(logmel, origin="lower", aspect="auto", cmap="magma", extent=(0, frames, 0, mels))
    # Each patch covers [i·stride, i·stride + patch); drawn on its stride cell, centred in the patch.
    offset = (patch - stride) / 2
    low, high = ATTENTION_RANGE
    overlay = axes.imshow(np.clip(relative_attention(attention), low, high), origin="lower", aspect="auto",
                          cmap="viridis", alpha=0.55, norm=LogNorm(low, high),
                          extent=(offset, offset + columns * stride, offset, offset + rows * stride))
    axes.set_xlabel("time frame (hop 2048 samples ≈ 43 ms)")
    axes.set_ylabel("mel band")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label="log-mel (dB)", pad=0.01)
    bar = figure.colorbar(overlay, ax=axes, extend="both", pad=0.02,
                          label=f"[CLS] attention, last block, × uniform\n(1 = 1/{rows * columns} of it per patch; log scale)")
    bar.ax.yaxis.set_major_locator(FixedLocator([t for t in (0.1, 0.25, 0.5, 1, 2, 4, 10) if low <= t <= high]))
    bar.ax.yaxis.set_minor_locator(FixedLocator([]))
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}×"))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def read_scalars(run: str) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} from the TensorBoard event files of ``run``/tensorboard (not
    viz's own images under tensorboard/viz)."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    curves: dict[str, dict[int, float]] = {}
    root = Path(run, "tensorboard")
    for event_file in sorted(root.rglob("events.out.tfevents.*")):
        if event_file.relative_to(root).parts[0] == VIZ_LOG_DIR:
            continue
        for record in tf.data.TFRecordDataset(str(event_file)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                if kind == "simple_value":
                    number = value.simple_value
                elif kind == "tensor" and not value.tensor.tensor_shape.dim and value.tensor.dtype in _NUMBERS:
                    number = float(tf.make_ndarray(value.tensor))
                else:
                    continue  # images, histograms, text
                curves.setdefault(value.tag, {})[event.step] = number  # a resumed run rewrites steps
    return {tag: sorted(points.items()) for tag, points in sorted(curves.items())}


def curves_picture(curves: dict[str, list[tuple[int, float]]], path: str, title: str) -> str:
    """One panel per scalar; a scalar that never changed (the loss scale outside float16) is left out."""
    if not curves:
        raise ValueError("no TensorBoard scalars found: has the run logged any step?")
    curves = {tag: points for tag, points in curves.items() if len({value for _, value in points}) > 1} or curves
    plt = _pyplot()
    columns = 3
    rows = -(-len(curves) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(4 * columns, 2.8 * rows), squeeze=False)
    for axes, (tag, points) in zip(grid.flat, curves.items()):
        steps, values = zip(*points)
        axes.plot(steps, values, linewidth=1.2)
        axes.set_title(tag, fontsize="medium")
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
    for axes in list(grid.flat)[len(curves):]:
        axes.axis("off")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _feature_order(names: list[str]) -> list[str]:
    """lejepa@STEP by step, then lejepa, then the baselines in the report's order."""
    checkpoints = sorted((n for n in names if n.startswith("lejepa@")), key=lambda n: int(n.split("@")[1]))
    return checkpoints + [n for n in names if n == "lejepa"] + [n for n in names if not n.startswith("lejepa")]


def _short_task(task: str) -> str:
    """The report's task with each path cut to its last two parts (no machine's folders in a picture)."""
    return re.sub(r"\S*/\S*", lambda match: "/".join(match.group(0).rstrip("/").split("/")[-2:]), task)


def _probe_details(report: dict) -> str:
    if report.get("kind") == "single-label":
        return f"{report.get('files', '?')} files, {report.get('classes', '?')} classes, {report.get('validation', '')}"
    evaluated = {v.get("classes_evaluated") for v in report["results"].values()} - {None}
    classes = f", macro over {evaluated.pop()} classes" if len(evaluated) == 1 else ""
    return f"{report.get('train_examples', '?')} clips fitted, {report.get('eval_examples', '?')} measured{classes}"


def probe_picture(report: dict, path: str, title: str) -> str:
    """The probe report (probe.json) as bars: a panel per metric, a bar per feature set."""
    metrics = [m for m in report["metrics"]
               if any(isinstance(v.get(m), (int, float)) and math.isfinite(v[m]) for v in report["results"].values())]
    names = _feature_order(list(report["results"]))
    if not metrics or not names:
        raise ValueError("the probe report has no results to draw")
    plt = _pyplot()
    chance = {"AUC": 0.5}
    if report.get("classes"):
        chance["accuracy"] = 1.0 / report["classes"]
    baseline_colours = iter(["0.55", "tab:orange", "tab:green", "tab:purple"])
    colours = {n: "tab:blue" if n == "lejepa" else "#9ecae1" if n.startswith("lejepa@") else next(baseline_colours, "0.4")
               for n in names}
    width = max(4.5, 0.75 * len(names) + 1.2)
    figure, grid = plt.subplots(1, len(metrics), figsize=(width * len(metrics), 4.2), squeeze=False)
    for axes, metric in zip(grid.flat, metrics):
        values = [float(report["results"][n].get(metric, float("nan"))) for n in names]
        bars = axes.bar(range(len(names)), values, color=[colours[n] for n in names])
        axes.bar_label(bars, fmt="%.3f", fontsize="small", padding=2)
        for position, name in enumerate(names):
            folds = report["results"][name].get(f"{metric}_per_fold") or []
            axes.scatter([position] * len(folds), folds, s=10, color="black", zorder=3,
                         label="one fold" if position == 0 and folds else None)
        if metric in chance:
            axes.axhline(chance[metric], color="0.3", linestyle="--", linewidth=1, label=f"chance ({chance[metric]:.3g})")
        finite = [v for v in values if math.isfinite(v)]
        axes.set_ylim(0, min(1.2, 1.3 * max(finite + [chance.get(metric, 0.0)])) or 1.0)  # room for the legend
        axes.set_xticks(range(len(names)), names, rotation=25, ha="right")
        axes.set_ylabel(metric)
        axes.grid(axis="y", alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small", loc="upper left", framealpha=0.9)
    figure.suptitle(f"{title}\n{_short_task(report.get('task', ''))}\n{_probe_details(report)}", fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# --------------------------------------------------------------------------------------------
# Labelled data → embeddings
# --------------------------------------------------------------------------------------------


@dataclass
class Embedded:
    """Embedded clips: what the PCA, the attention pictures and the projector need."""

    embeddings: np.ndarray  # [clips, width]
    labels: list[str]  # the label each clip is coloured by
    columns: dict[str, list[str]]  # the projector's metadata columns, one value per clip
    what: str  # "files" or "clips of SHARD_DIR"
    attention: list[tuple[str, str, np.ndarray]] = field(default_factory=list)  # (label, name, logmel)


def embed_audio(source: str, featurize, max_clips: int) -> Embedded:
    from training.probe import file_windows, mean_per_file, read_labelled_audio

    files = read_labelled_audio(source)
    if len(files) > max_clips:
        files = [files[int(i)] for i in np.linspace(0, len(files) - 1, max_clips).round()]
    owners: list[int] = []
    parts: list[np.ndarray] = []
    first_window: dict[str, tuple[int, np.ndarray]] = {}  # label → (file, its first window)
    for batch in file_windows(files, owners, skipped=[]):
        batch_owners = owners[len(owners) - len(batch):]
        parts.append(np.asarray(featurize(batch), np.float32))
        for logmel, owner in zip(batch, batch_owners):
            label = files[owner].label
            if label not in first_window and len(first_window) < MAX_ATTENTION_PICTURES:
                first_window[label] = (owner, logmel.copy())
    if not parts:
        raise ValueError(f"{source}: no file made a clip")
    kept, embeddings = mean_per_file(np.concatenate(parts), owners)
    labels = [files[index].label for index in kept]
    return Embedded(embeddings, labels, {"label": labels, "file": [files[i].path.split("/")[-1] for i in kept]},
                    f"{len(kept)} files",
                    [(label, Path(files[owner].path).stem, logmel) for label, (owner, logmel) in first_window.items()])


def embed_shards(directory: str, featurize, max_clips: int) -> Embedded:
    """At most ``max_clips`` clips of the eval split (else train), each coloured by its most frequent label."""
    from audioshards import shards
    from training.probe import BATCH

    manifest = _shard_manifest(directory)
    split = "eval" if "eval" in manifest["splits"] else "train"
    names = {int(entry["index"]): entry["display_name"] for entry in manifest.get("labels") or []}
    shape = tuple(manifest["example"]["shape"])
    clip_ids: list[str] = []
    label_sets: list[tuple[int, ...]] = []
    parts: list[np.ndarray] = []
    first_clip: dict[int | None, tuple[str, np.ndarray]] = {}  # label (None: unlabelled) → its first clip
    batch: list[np.ndarray] = []
    for entry in manifest["splits"][split]["shards"]:
        for example in shards.read_examples(f"{directory.rstrip('/')}/{entry['file']}", shape):
            clip_ids.append(example.clip_id)
            label_sets.append(example.labels)
            for label in example.labels or (None,):
                first_clip.setdefault(label, (example.clip_id, example.logmel))
            batch.append(example.logmel)
            if len(batch) == BATCH or len(clip_ids) == max_clips:
                parts.append(np.asarray(featurize(np.stack(batch)), np.float32))
                batch = []
            if len(clip_ids) == max_clips:
                break
        if len(clip_ids) == max_clips:
            break
    if batch:
        parts.append(np.asarray(featurize(np.stack(batch)), np.float32))
    if not parts:
        raise ValueError(f"{directory}: its {split} split has no clips")
    counts = Counter(label for labels in label_sets for label in labels)
    colour = [min(labels, key=lambda label: (-counts[label], label)) if labels else None for labels in label_sets]

    def name(label: int | None) -> str:
        return NO_LABEL if label is None else names.get(label, str(label))

    attention, drawn = [], set()
    for label, _ in Counter(colour).most_common():
        clip_id, logmel = first_clip[label]
        if clip_id not in drawn and len(attention) < MAX_ATTENTION_PICTURES:
            attention.append((name(label), clip_id, logmel))
            drawn.add(clip_id)
    labels = [name(label) for label in colour]
    every = [" | ".join(name(label) for label in labels_of_clip) or NO_LABEL for labels_of_clip in label_sets]
    return Embedded(np.concatenate(parts), labels, {"label": labels, "labels": every, "clip": clip_ids},
                    f"{len(clip_ids)} clips of {Path(directory.rstrip('/')).name} ({split})", attention)


def _shard_manifest(directory: str) -> dict:
    from audioshards import shards

    manifest = shards.read_manifest(directory)
    if manifest is None:
        raise FileNotFoundError(f"--shards {directory}: no manifest.json there, not a shard directory")
    return manifest


# --------------------------------------------------------------------------------------------
# TensorBoard
# --------------------------------------------------------------------------------------------


def write_tensorboard(log_dir: str, pictures: list[str], step: int, embedded: Embedded | None) -> None:
    """Each PNG as an image summary ``pictures/<name>``; the embeddings into the projector."""
    import struct

    import tensorflow as tf
    from tensorboard.plugins.image import metadata

    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        for path in pictures:
            png = Path(path).read_bytes()
            width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
            # What tf.summary.image writes, [width, height, PNG], without decoding and encoding it again.
            tf.summary.write(f"pictures/{Path(path).stem}", tf.constant([str(width).encode(), str(height).encode(), png]),
                             step=step, metadata=metadata.create_summary_metadata(display_name=None, description=None))
    writer.close()
    if embedded is not None:
        write_projector(log_dir, embedded.embeddings, embedded.columns)


def write_projector(log_dir: str, embeddings: np.ndarray, columns: dict[str, list[str]]) -> None:
    """A checkpoint of the variable ``embedding``, ``metadata.tsv`` (a header row, then one row per
    embedding) and ``projector_config.pbtxt`` in ``log_dir``: TensorBoard's projector finds them."""
    import tensorflow as tf
    from tensorboard.plugins import projector

    def cell(text: str) -> str:
        return re.sub(r"[\t\r\n]+", " ", str(text))

    rows = ["\t".join(columns)] + ["\t".join(cell(values[i]) for values in columns.values())
                                   for i in range(len(embeddings))]
    with tf.io.gfile.GFile(f"{log_dir}/metadata.tsv", "w") as handle:
        handle.write("\n".join(rows) + "\n")
    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(np.asarray(embeddings, np.float32), name="embedding"))
    tf.train.CheckpointManager(checkpoint, log_dir, max_to_keep=1, checkpoint_name="embedding").save()
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = EMBEDDING_TENSOR
    embedding.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(log_dir, config)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="training run directory")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--shards", metavar="SHARD_DIR",
                      help="labelled shards for the PCA and attention pictures (AudioSet labels from the manifest; "
                           "its eval split, else train; a clip is coloured by its most frequent label)")
    data.add_argument("--audio", metavar="DIR_OR_CSV",
                      help="labelled audio for the PCA and attention pictures: a folder per class, or a CSV "
                           "path,label[,fold]; without --shards or --audio, only the curves (and the probe)")
    parser.add_argument("--max-clips", type=int, default=MAX_CLIPS, metavar="N",
                        help="embed at most N clips of --shards (the first) or files of --audio (evenly spaced)")
    parser.add_argument("--probe", metavar="FILE",
                        help="probe report (JSON of probe --out) drawn as probe.png (default: RUN_DIR/probe.json "
                             "when there)")
    parser.add_argument("--out", required=True, metavar="PICTURE_DIR", help="folder for the PNG files")
    parser.add_argument("--no-tensorboard", action="store_true",
                        help="do not write the pictures and the embeddings' projector into RUN_DIR/tensorboard/viz")


def run(args: argparse.Namespace) -> list[str]:
    from training.probe import read_labelled_audio

    run_dir = args.run.rstrip("/")
    max_clips = getattr(args, "max_clips", MAX_CLIPS)
    if max_clips < 2:
        raise ValueError(f"--max-clips {max_clips}: a PCA needs at least 2 clips")
    # Inputs first: a mistyped --audio, --shards or --probe leaves no empty --out behind.
    if getattr(args, "audio", None):
        read_labelled_audio(args.audio)
    if getattr(args, "shards", None):
        _shard_manifest(args.shards)
    probe_file = getattr(args, "probe", None)
    if probe_file and not Path(probe_file).is_file():
        raise FileNotFoundError(f"--probe {probe_file}: no such file")
    probe_file = probe_file or (f"{run_dir}/probe.json" if Path(run_dir, "probe.json").is_file() else None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(run_dir).name
    written: list[str] = []
    embedded, step = None, None
    if getattr(args, "audio", None) or getattr(args, "shards", None):
        embedded, step = _data_pictures(args, run_dir, max_clips, out, written)
    curves = read_scalars(run_dir)
    if curves or not written:
        written.append(curves_picture(curves, str(out / "training.png"), f"Training of {name}"))
    else:
        log.warning("no TensorBoard scalars in %s/tensorboard: no training.png", run_dir)
    if probe_file:
        report = json.loads(Path(probe_file).read_text())
        written.append(probe_picture(report, str(out / "probe.png"), f"Linear probe of {name}"))
    if step is None:
        step = max((points[-1][0] for points in curves.values()), default=0)
    if not getattr(args, "no_tensorboard", False):
        write_tensorboard(f"{run_dir}/tensorboard/{VIZ_LOG_DIR}", written, step, embedded)
    for path in written:
        log.info("wrote %s", path)
    return written


def _data_pictures(args, run_dir: str, max_clips: int, out: Path, written: list[str]) -> tuple[Embedded, int]:
    from training.export import load_encoder, normalisation
    from training.probe import encoder_featurizer

    encoder, metadata = load_encoder(f"{run_dir}/encoder")
    mean, std = normalisation(metadata)
    featurize = encoder_featurizer(encoder, mean, std)
    if getattr(args, "shards", None):
        embedded = embed_shards(args.shards, featurize, max_clips)
        how = ", each coloured by its most frequent label"
    else:
        embedded = embed_audio(args.audio, featurize, max_clips)
        how = ""
    written.append(pca_picture(embedded.embeddings, embedded.labels, str(out / "pca.png"),
                               f"Embeddings of {embedded.what}{how}, step {metadata['step']}"))
    for label, clip, logmel in embedded.attention:
        normalised = (logmel.astype(np.float32) - mean[:, None, None]) / std[:, None, None]
        attention = encoder.cls_attention(normalised[None]).numpy()[0]
        written.append(attention_picture(logmel[..., 0].astype(np.float32), attention,
                                         str(out / f"attention-{_file_name(label)}-{_file_name(clip)}.png"),
                                         f"{label}: {clip}", patch=encoder.config.patch, stride=encoder.config.stride))
    return embedded, int(metadata["step"])


def _file_name(text: str) -> str:
    """A label or clip name as part of a file name: letters, digits, '-', '_' and '.' kept."""
    return re.sub(r"[^\w.-]+", "_", text).strip("_") or "x"
