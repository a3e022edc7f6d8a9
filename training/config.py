"""Every setting of a training run, as frozen dataclasses; the command line is generated from them.

A run directory holds ``config.json`` (``Config.to_dict()``, resolved: no "auto" left in it), so a
run can be reproduced or resumed from its directory alone. On resume the saved config wins; an
option given again on the command line must agree with it, except the few in ``RESUMABLE`` that
may change between restarts (more steps, another device count, ...).

Model sizes are a table looked up by name (big_vision style), beside the model in
``training.vit`` (``MODEL_SIZES``, ``LEARNING_RATES``); ``--width`` and friends override one
number of the chosen size.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from typing import Any

from audioshards import flags, storage
from audioshards.flags import setting
from training.vit import LEARNING_RATES, MODEL_SIZES


class UsageError(ValueError):
    """A setting the user gave is invalid or contradicts the run directory: say what to do."""


PRECISIONS = ("auto", "mixed_bfloat16", "mixed_float16", "float32")
JIT_CHOICES = ("auto", "all", "views", "off")
# Choices are flags' choices too, so argparse rejects a misspelt one before TensorFlow is imported;
# __post_init__ checks them again for a hand-edited config.json.
POOLS = ("cls+mean", "cls")
PROJECTOR_NORMS = ("batch", "layer")
INVARIANCES = ("mean", "sum")
SIGREG_SAMPLES = ("all", "views")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The ViT encoder and its projector. Unset numbers come from MODEL_SIZES."""

    size: str = setting("tiny", "model size: " + ", ".join(MODEL_SIZES), flag="--model", choices=tuple(MODEL_SIZES))
    width: int | None = setting(None, "token width (default: from --model)")
    depth: int | None = setting(None, "transformer blocks (default: from --model)")
    heads: int | None = setting(None, "attention heads (default: from --model)")
    mlp_dim: int | None = setting(None, "hidden width of each block's MLP (default: from --model)")
    projector_hidden: int | None = setting(None, "hidden width of the projector (default: from --model)")
    projector_dim: int | None = setting(None, "embedding width z used by the loss (default: from --model)")
    patch: int = setting(16, "patch size (mel bands and frames)")
    stride: int = setting(10, "patch stride (mel bands and frames)")
    max_time_patches: int = setting(64, "longest input in time patches that the relative time bias covers")
    # cls+mean by default: measured better than [CLS] alone on both probe tasks, pretrained and
    # random alike (docs/design.md, "Measurements").
    pool: str = setting("cls+mean", "representation: cls+mean ([CLS] concatenated with the mean patch output) or cls",
                        choices=POOLS)
    projector_norm: str = setting("batch", "normalisation in the projector: batch (BatchNorm synchronised across "
                                           "replicas, as the reference) or layer (starts near collapse: for comparison)",
                                  choices=PROJECTOR_NORMS)

    def __post_init__(self) -> None:
        if self.size not in MODEL_SIZES:
            raise UsageError(f"--model must be one of {', '.join(MODEL_SIZES)}, not {self.size!r}")
        for key, value in MODEL_SIZES[self.size].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        if self.width % self.heads:
            raise UsageError(f"--width {self.width} must be a multiple of --heads {self.heads}")
        if self.pool not in POOLS:
            raise UsageError(f"--pool must be cls or cls+mean, not {self.pool!r}")
        if self.projector_norm not in PROJECTOR_NORMS:
            raise UsageError(f"--projector-norm must be batch or layer, not {self.projector_norm!r}")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the augmentations of one kind of view; 0 switches one off."""

    pitch_shift: float = setting(0.0, "pitch shift: largest shift along the mel axis, in bands (fractional)")
    time_stretch: float = setting(0.0, "time stretch: playback rate drawn log-uniformly in [1/(1+a), 1+a]")
    volume_db: float = setting(0.0, "volume: a constant drawn uniformly in [-a, a] dB")
    convolution_db: float = setting(0.0, "random convolution: peak of a smooth random curve over frequency, dB")
    channel_drop: float = setting(0.0, "channel drop: probability of replacing a channel by the other or the mean")
    noise: float = setting(0.0, "noise injection: probability of power-adding a noise floor")
    noise_db: tuple[float, float] = setting((-30.0, -10.0), "noise floor relative to the view's mean level, dB")
    freq_mask: float = setting(0.0, "frequency masking: probability of blanking a band of mel rows")
    freq_mask_bands: int = setting(32, "frequency masking: widest band, in mel rows")
    patch_mask: float = setting(0.0, "patch masking: largest fraction of patch tokens zeroed")

    def __post_init__(self) -> None:
        for name in ("channel_drop", "noise", "freq_mask", "patch_mask"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UsageError(f"{name} is a probability or fraction in [0, 1], not {getattr(self, name)}")
        if self.noise_db[0] > self.noise_db[1]:
            raise UsageError(f"noise_db must be (low, high), not {self.noise_db}")


# Global views: only pitch shift, time stretch and volume, mildly (docs/design.md, "Views").
GLOBAL_AUGMENT = AugmentConfig(pitch_shift=1.0, time_stretch=0.05, volume_db=3.0)
LOCAL_AUGMENT = AugmentConfig(
    pitch_shift=3.0, time_stretch=0.15, volume_db=6.0, convolution_db=3.0, channel_drop=0.3, noise=0.3,
    freq_mask=0.5, freq_mask_bands=32, patch_mask=0.3,
)


@dataclasses.dataclass(frozen=True)
class ViewConfig:
    """How many views of which length, and their augmentations."""

    global_views: int = setting(2, "global views per clip")
    local_views: int = setting(6, "local views per clip")
    global_frames: int = setting(226, "frames of a global view after resampling ((frames - 16) % 10 == 0)")
    local_frames: int = setting(66, "frames of a local view after resampling ((frames - 16) % 10 == 0)")
    global_crop: tuple[float, float] = setting((0.8, 1.0), "fraction of the clip a global view covers (low, high)")
    local_crop: tuple[float, float] = setting((0.15, 0.4), "fraction of the clip a local view covers (low, high)")
    min_band_std: float = setting(1.0, "floor of the per-band standard deviation used to normalise, dB")
    global_augment: AugmentConfig = setting(GLOBAL_AUGMENT, "augmentations of global views")
    local_augment: AugmentConfig = setting(LOCAL_AUGMENT, "augmentations of local views")

    def check_frames(self, patch: int, stride: int) -> None:
        for name in ("global_frames", "local_frames"):
            frames = getattr(self, name)
            if frames < patch or (frames - patch) % stride:
                nearest = patch + round((frames - patch) / stride) * stride
                raise UsageError(
                    f"--{name.replace('_', '-')} {frames}: (frames - {patch}) must be a multiple of {stride} "
                    f"so patches tile the view exactly; try {max(nearest, patch)}"
                )

    def __post_init__(self) -> None:
        if self.global_views < 1:
            raise UsageError("--global-views must be at least 1 (the invariance target is their mean)")
        if self.local_views < 0:
            raise UsageError("--local-views must be 0 or more")
        for name in ("global_crop", "local_crop"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high <= 1.0:
                raise UsageError(f"--{name.replace('_', '-')} must satisfy 0 < low <= high <= 1, not {low} {high}")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """LeJEPA: (1 − λ)·invariance + λ·SIGReg (docs/design.md, "The loss")."""

    lambda_: float = setting(0.05, "weight of SIGReg: (1 - λ)·invariance + λ·SIGReg", flag="--lambda")
    # Default "mean": with the literal squared norm ("sum") and λ = 0.05, tiny collapses
    # (embedding std 0.001, SIGReg stuck at its collapsed value); λ was tuned on the mean form.
    invariance: str = setting("mean", "invariance distance over embedding dimensions: mean (LeJEPA's reference "
                                       "code, the default) or sum (the squared norm ‖·‖², = mean · D)",
                              choices=INVARIANCES)
    directions: int = setting(1024, "random 1-D projections per step for SIGReg")
    t_points: int = setting(17, "Epps-Pulley integration points")
    t_max: float = setting(3.0, "Epps-Pulley integration range [-t_max, t_max]")
    sigreg_samples: str = setting("all", "what SIGReg tests as one sample: all (the V·N embeddings of a step) or "
                                         "views (each view's N clips, statistics averaged; V times weaker)",
                                  choices=SIGREG_SAMPLES)

    def __post_init__(self) -> None:
        if self.invariance not in INVARIANCES:
            raise UsageError(f"--invariance must be sum or mean, not {self.invariance!r}")
        if self.sigreg_samples not in SIGREG_SAMPLES:
            raise UsageError(f"--sigreg-samples must be all or views, not {self.sigreg_samples!r}")
        if not 0.0 <= self.lambda_ <= 1.0:
            raise UsageError(f"--lambda must be in [0, 1], not {self.lambda_}")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up and cosine decay."""

    lr: float | None = setting(None, "peak learning rate, as given: not scaled with --batch (default: per --model, "
                                     "from LEARNING_RATES)")
    weight_decay: float = setting(0.05, "decoupled weight decay (kernels only, not biases, norms or embeddings)")
    beta1: float = setting(0.9, "AdamW β1")
    beta2: float = setting(0.999, "AdamW β2")
    epsilon: float = setting(1e-8, "AdamW ε")
    warmup: float = setting(0.1, "warm-up: a fraction of the steps (< 1) or a number of steps (>= 1)")
    min_lr: float = setting(0.01, "final learning rate as a fraction of the peak")
    clip_norm: float = setting(1.0, "clip the global gradient norm to this (0: no clipping)")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Where, how long, on what."""

    shards: str = setting("", "shard directory (manifest.json and train-*.tfrecord)", metavar="SHARD_DIR")
    out: str = setting("", "run directory: config, checkpoints, TensorBoard, exported encoder", metavar="RUN_DIR")
    batch: int = setting(256, "global batch (clips per step over all replicas)")
    steps: int | None = setting(None, "training steps (or give --epochs)")
    epochs: float | None = setting(None, "passes over the train split (default 100 when --steps is not given)")
    seed: int = setting(0, "seed of initialisation, data order, views and SIGReg directions")
    precision: str = setting("auto", "auto (bf16 on GPU, float32 on CPU), " + ", ".join(PRECISIONS[1:]),
                             choices=PRECISIONS)
    checkpoint_every: int = setting(1000, "steps between checkpoints (one is also written at the end and on SIGTERM)")
    keep_checkpoints: int = setting(3, "checkpoints kept")
    log_every: int = setting(10, "steps between console lines and TensorBoard points")
    cpu_devices: int = setting(1, "split the CPU into K logical devices (MirroredStrategy with K replicas, no GPU)")
    skip_corrupt: bool = setting(False, "skip truncated or corrupt shards (counted and reported) instead of stopping")
    deterministic: bool = setting(False, "deterministic ops and data order: a resumed run repeats an uninterrupted one")
    shuffle_buffer: int = setting(1024, "examples in the shuffle buffer of each input pipeline")
    jit: str = setting("auto", "XLA: all (views and model), views (views only), off; auto = all on GPU, views on "
                                "CPU (where TensorFlow's oneDNN kernels run the model faster than XLA: docs/performance.md)",
                       choices=JIT_CHOICES)

    def __post_init__(self) -> None:
        if self.jit not in JIT_CHOICES:
            raise UsageError(f"--jit must be one of {', '.join(JIT_CHOICES)}, not {self.jit!r}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.steps is not None and self.epochs is not None:
            raise UsageError("give --steps or --epochs, not both")
        for name in ("batch", "checkpoint_every", "log_every", "cpu_devices", "keep_checkpoints", "shuffle_buffer"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if self.steps is not None and self.steps < 1:
            raise UsageError("--steps must be at least 1")
        if self.epochs is not None and self.epochs <= 0:
            raise UsageError("--epochs must be positive")


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig = setting(ModelConfig(), "")
    views: ViewConfig = setting(ViewConfig(), "")
    loss: LossConfig = setting(LossConfig(), "")
    optim: OptimConfig = setting(OptimConfig(), "")
    run: RunConfig = setting(RunConfig(), "")

    def __post_init__(self) -> None:
        self.views.check_frames(self.model.patch, self.model.stride)
        if self.optim.lr is None:
            object.__setattr__(self, "optim", dataclasses.replace(self.optim, lr=LEARNING_RATES[self.model.size]))
        if not self.optim.lr > 0:
            raise UsageError(f"--lr must be positive, not {self.optim.lr}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        return flags.from_dict(cls, values, error=UsageError)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def replace(self, **changes: Any) -> "Config":
        """``config.replace(**{"run.steps": 10, "model.size": "small"})``.

        A new model size brings its own numbers from MODEL_SIZES, except those changed explicitly."""
        values = self.to_dict()
        if "model.size" in changes:
            for key in MODEL_SIZES[changes["model.size"]] if changes["model.size"] in MODEL_SIZES else ():
                values["model"][key] = None
            if changes["model.size"] != values["model"]["size"] and "optim.lr" not in changes:
                values["optim"]["lr"] = None  # the new size's default
        return Config.from_dict(_apply(values, changes))


def _apply(values: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    values = json.loads(json.dumps(values))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = values
        for parent in parents:
            node = node[parent]
        if leaf not in node:
            raise KeyError(f"no setting {dotted}")
        node[leaf] = list(value) if isinstance(value, tuple) else value
    return values


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

#: Prefix of the flags of a nested section (global_augment.volume_db → --global-volume-db).
_PREFIXES = {"global_augment": "global-", "local_augment": "local-"}

#: Settings that may differ when a run is resumed: they do not change what is being learnt, or
#: (steps) they extend it knowingly.
RESUMABLE = frozenset({
    "run.out", "run.shards", "run.steps", "run.epochs", "run.checkpoint_every", "run.keep_checkpoints", "run.log_every",
    "run.cpu_devices", "run.skip_corrupt", "run.shuffle_buffer", "run.jit",
})


FLAGS = flags.flags(Config, prefixes=_PREFIXES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting. Unset flags stay out of the namespace (so resume can tell)."""
    flags.add_arguments(parser, FLAGS)


def given_settings(namespace: argparse.Namespace) -> dict[str, Any]:
    """{dotted setting: value} for the flags present on the command line."""
    return flags.given(namespace, FLAGS)


def settings_from_file(path: str, flag_settings: dict[str, Any]) -> dict[str, Any]:
    """``--config FILE``: the settings a JSON file holds, in config.json's form (any subset of its
    sections and keys, e.g. ``{"model": {"size": "small"}, "run": {"batch": 64}}``), as dotted
    settings under ``flag_settings`` (flags win). The file is checked like a saved config.json
    (each problem named with the file). A flag that changes the model size also drops the file's
    numbers of the old size (width, depth, ...) and its learning rate, unless flags give them: a
    saved config.json spells them all out, and the new size should bring its own."""
    if not storage.exists(path):
        raise UsageError(f"--config {path}: no such file")
    load(path)  # types and names, each problem with the file's name
    with storage.open_read(path) as handle:
        values = json.loads(handle.read().decode("utf-8"))
    given: dict[str, Any] = {}
    for section, inner in values.items():
        for key, value in (inner.items() if isinstance(inner, dict) else ()):
            given[f"{section}.{key}"] = tuple(value) if isinstance(value, list) else value
    size = flag_settings.get("model.size")
    if size is not None and size != given.get("model.size"):
        for key in [*MODEL_SIZES.get(given.get("model.size", ""), {}), "lr"]:
            given.pop(f"{'optim' if key == 'lr' else 'model'}.{key}", None)
    return {**given, **flag_settings}


def config_from_settings(settings: dict[str, Any], base: Config | None = None) -> Config:
    return (base or Config()).replace(**settings)


def differences(saved: Config, settings: dict[str, Any]) -> list[str]:
    """Given settings that disagree with a saved config and may not change on resume."""
    values = saved.to_dict()
    problems = []
    for dotted, value in sorted(settings.items()):
        node = values
        for part in dotted.split("."):
            node = node[part]
        current = tuple(node) if isinstance(node, list) else node
        if current != value and dotted not in RESUMABLE:
            flag = next(row.flag for row in FLAGS if row.dotted == dotted)
            problems.append(f"{flag}: the run was started with {current!r}, now {value!r}")
    return problems


def load(path: str) -> Config:
    """A run's saved config.json. A damaged or hand-edited file is a UsageError naming the file and
    the setting (a value of the wrong type would otherwise surface as a TypeError deep in the
    dataclasses' checks, a bad JSON as a bare JSONDecodeError)."""
    import types

    import tensorflow as tf

    def type_problem(kind: Any, value: Any, where: str) -> str | None:
        """What is wrong with ``value`` for a field typed ``kind``, or None."""
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                return f"{where} is {value!r}, expected an object of {kind.__name__} settings"
            hints = typing.get_type_hints(kind)
            return next((problem for name, inner in value.items() if name in hints
                         for problem in [type_problem(hints[name], inner, f"{where}.{name}")] if problem), None)
        if origin in (typing.Union, types.UnionType):
            problems = [type_problem(arm, value, where) for arm in args]
            return None if None in problems else next(p for p in problems if p)
        if kind is type(None):
            return None if value is None else f"{where} is {value!r}, expected null"
        if origin is tuple:
            if not isinstance(value, list):
                return f"{where} is {value!r}, expected a list"
            arms = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
            if len(arms) != len(value):
                return f"{where} is {value!r}, expected {len(arms)} values"
            return next((p for arm, item in zip(arms, value) for p in [type_problem(arm, item, where)] if p), None)
        if origin is typing.Literal:
            return None if value in args else f"{where} is {value!r}, expected one of {list(args)}"
        expected = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(kind)
        if expected is None or (isinstance(value, expected) and (kind is bool or not isinstance(value, bool))):
            return None
        return f"{where} is {value!r} ({type(value).__name__}), expected {kind.__name__}"

    try:
        with tf.io.gfile.GFile(path, "rb") as handle:
            values = json.loads(handle.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{path}: not a readable JSON file ({error}); restore it, or start a new run in another "
                         "--out") from None
    if not isinstance(values, dict):
        raise UsageError(f"{path}: expected an object of settings, found {type(values).__name__}")
    for name, value in values.items():
        hints = typing.get_type_hints(Config)
        problem = type_problem(hints[name], value, name) if name in hints else None
        if problem:
            raise UsageError(f"{path}: {problem}")
    try:
        return Config.from_dict(values)
    except UsageError as error:
        raise UsageError(f"{path}: {error}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise UsageError(f"{path}: unusable settings ({type(error).__name__}: {error})") from None
