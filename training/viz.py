"""Pictures of what a run learned, as PNG files with matplotlib.

``python -m training viz --run RUN_DIR --audio DIR_OR_CSV --out PICTURE_DIR`` writes:

- ``pca.png``: the first two principal components of the encoder's embeddings of the labelled
  audio (a folder per class or a CSV ``path,label[,fold]``, as for the probe), coloured by label;
- ``attention-<file>.png``: for a few files (the first of each label, at most six), the
  ``[CLS]`` attention of the last block over the frequency × time patch grid, drawn over the
  clip's log-mel (first channel, first 10 s window);
- ``training.png``: the training curves, read from the run's TensorBoard event files.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
MAX_ATTENTION_PICTURES = 6


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def pca_picture(embeddings: np.ndarray, labels: list[str], path: str, title: str) -> str:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    plt = _pyplot()
    pca = PCA(n_components=2, random_state=0)
    points = pca.fit_transform(StandardScaler().fit_transform(embeddings))
    figure, axes = plt.subplots(figsize=(7, 6))
    colours = plt.cm.tab10 if len(set(labels)) <= 10 else plt.cm.tab20
    for index, label in enumerate(sorted(set(labels))):
        chosen = np.asarray(labels) == label
        axes.scatter(points[chosen, 0], points[chosen, 1], s=18, label=label, color=colours(index % colours.N))
    variance = pca.explained_variance_ratio_ * 100
    axes.set_xlabel(f"PC 1 ({variance[0]:.0f} % of variance)")
    axes.set_ylabel(f"PC 2 ({variance[1]:.0f} % of variance)")
    axes.set_title(title)
    axes.legend(fontsize="small", markerscale=1.5, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def attention_picture(logmel: np.ndarray, attention: np.ndarray, path: str, title: str,
                      patch: int = 16, stride: int = 10) -> str:
    """``logmel`` [mel, frames] dB, ``attention`` [rows, columns] over the patch grid."""
    plt = _pyplot()
    mels, frames = logmel.shape
    rows, columns = attention.shape
    figure, axes = plt.subplots(figsize=(9, 5))
    image = axes.imshow(logmel, origin="lower", aspect="auto", cmap="magma", extent=(0, frames, 0, mels))
    # Each patch covers [i·stride, i·stride + patch); drawn on its stride cell, centred in the patch.
    offset = (patch - stride) / 2
    overlay = axes.imshow(attention, origin="lower", aspect="auto", cmap="viridis", alpha=0.55,
                          extent=(offset, offset + columns * stride, offset, offset + rows * stride))
    axes.set_xlabel("time frame (hop 2048 samples ≈ 43 ms)")
    axes.set_ylabel("mel band")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label="log-mel (dB)", pad=0.01)
    figure.colorbar(overlay, ax=axes, label="[CLS] attention, last block", pad=0.02)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def read_scalars(run: str) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} from the TensorBoard event files of ``run``/tensorboard."""
    import tensorflow as tf

    curves: dict[str, dict[int, float]] = {}
    for event_file in sorted(Path(run, "tensorboard").rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="training run directory")
    parser.add_argument("--audio", required=True, help="labelled audio: a folder per class, or a CSV path,label[,fold]")
    parser.add_argument("--out", required=True, help="folder for the PNG files")


def run(args: argparse.Namespace) -> list[str]:
    from training.export import load_encoder, normalisation
    from training.probe import encoder_featurizer, file_windows, mean_per_file, read_labelled_audio

    files = read_labelled_audio(args.audio)  # inputs first: a mistyped --audio leaves no empty --out behind
    encoder, metadata = load_encoder(f"{args.run.rstrip('/')}/encoder")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mean, std = normalisation(metadata)
    featurize = encoder_featurizer(encoder, mean, std)
    owners: list[int] = []
    windows = list(file_windows(files, owners, skipped=[]))
    logmels = np.concatenate(windows)
    kept, embeddings = mean_per_file(np.concatenate([featurize(batch) for batch in windows]), owners)
    labels = [files[index].label for index in kept]
    written = [pca_picture(embeddings, labels, str(out / "pca.png"),
                           f"Embeddings of {len(kept)} files, step {metadata['step']}")]
    first_window = {owner: index for index, owner in reversed(list(enumerate(owners)))}
    shown: dict[str, int] = {}
    for index, label in zip(kept, labels):
        if label not in shown and len(shown) < MAX_ATTENTION_PICTURES:
            shown[label] = int(index)
    for label, index in shown.items():
        logmel = logmels[first_window[index]]
        normalised = (logmel.astype(np.float32) - mean[:, None, None]) / std[:, None, None]
        attention = encoder.cls_attention(normalised[None]).numpy()[0]
        name = Path(files[index].path).stem
        written.append(attention_picture(logmel[..., 0].astype(np.float32), attention,
                                         str(out / f"attention-{label}-{name}.png"), f"{label}: {name}"))
    written.append(curves_picture(read_scalars(args.run), str(out / "training.png"), f"Training of {Path(args.run.rstrip('/')).name}"))
    for path in written:
        log.info("wrote %s", path)
    return written
