"""Speed of the training step per model size, against this machine's dense matmul peak.

Prints one JSON object. In one process, so the ratios hold on a shared machine:

- ``matmul_peak``: FLOP/s of a chain of square ``tf.linalg.matmul`` in float32 and bfloat16, with
  and without XLA: the most TensorFlow gets out of this CPU;
- ``flops``: the model FLOPs per example (all views of a clip, forward and backward), counted in
  XLA's optimised program and by formula (``benchmarks.flops``);
- ``steps``: for each setting (model size, precision, ``--jit``; ``DEFAULT_SETTINGS`` unless
  ``--precisions`` or ``--jit`` ask for a cross product), examples per second of the
  trainer's own step (``training.train.build_step``: views, encoder + projector, LeJEPA loss,
  gradients, AdamW) on a fixed batch in memory (the input stream has its own benchmark), the
  time of the view maker alone, its share of the step, and the step's achieved FLOP/s as a
  fraction of the matmul peak of its precision;
- ``h100``: the examples per second the ``base`` model needs at 40 % of an H100's bf16 dense peak,
  against what one host core's input stream delivers (``benchmarks.input_stream``).

    python -m benchmarks.training_step [--models tiny small base] [--min-seconds 3] [--batch tiny=16 ...]
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time

import numpy as np

log = logging.getLogger("benchmarks.training_step")

#: NVIDIA H100 SXM5, BF16 Tensor Core: 1,979 TFLOP/s with 2:4 sparsity, half that dense
#: (H100 datasheet, https://www.nvidia.com/en-us/data-center/h100/).
H100_BF16_DENSE_FLOPS = 989e12
UTILISATION = 0.4

#: Per model size: the batch, and the (precision, --jit) settings measured by default. Every axis
#: is covered within `make bench`'s 15 minutes on 2 cores: ``tiny`` (cheap) in float32 without
#: XLA, with XLA for the views (the CPU default) and for the whole step; ``small`` and ``base``
#: (seconds to tens of seconds per step, most of a minute to build their first) in bfloat16 with
#: the default. ``--precisions`` or ``--jit`` measure their full cross product for every size
#: instead (docs/performance.md: such a run's figures).
DEFAULT_BATCH = {"tiny": 16, "small": 2, "base": 1}
DEFAULT_SETTINGS = {
    "tiny": (("float32", "off"), ("float32", "views"), ("float32", "all")),
    "small": (("mixed_bfloat16", "views"),),
    "base": (("mixed_bfloat16", "views"),),
}
JIT_CHOICES = ("off", "views", "all")
PRECISIONS = ("float32", "mixed_bfloat16")


def _seconds(function, min_seconds: float) -> float:
    """Mean wall time of `function` over as many calls as fill `min_seconds` (at least one).

    The caller makes the first, compiling call: a ``base`` step takes tens of seconds on a CPU, so
    a fixed repeat count would either blow the benchmark's budget or time a fast step too briefly."""
    calls, started = 0, time.perf_counter()
    while True:
        function()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return elapsed / calls


def matmul_peak(dtype: str, jit: bool, size: int = 2048, chain: int = 4, min_seconds: float = 2.0) -> float:
    """FLOP/s of `chain` dependent [size, size] matmuls in one tf.function."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.cast(rng.standard_normal((size, size)), dtype)
    w = tf.cast(rng.standard_normal((size, size)) / np.sqrt(size), dtype)  # keeps the chain's values O(1)

    @tf.function(jit_compile=jit)
    def product(x):
        for _ in range(chain):
            x = tf.linalg.matmul(x, w)
        return x

    product(a).numpy()
    seconds = _seconds(lambda: product(a).numpy(), min_seconds)
    return chain * 2 * size**3 / seconds


def step_speed(size: str, precision: str, jit: str, batch: int, min_seconds: float) -> dict[str, float]:
    """Seconds per training step and per call of the view maker alone, on one fixed batch."""
    import keras
    import tensorflow as tf

    from audioshards.spectrogram import SpectrogramConfig
    from training import views
    from training.config import Config
    from training.train import build_state, build_step

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(precision)
    config = Config().replace(**{"model.size": size, "run.batch": batch, "run.jit": jit, "run.precision": precision})
    spectrogram = SpectrogramConfig()
    strategy = tf.distribute.get_strategy()
    with strategy.scope():
        state = build_state(config, precision, spectrogram)
    band_mean, band_std = views.band_statistics([-50.0] * spectrogram.n_mels, [20.0] * spectrogram.n_mels, 1.0)
    step = build_step(config, strategy, state, band_mean, band_std, steps=1000)
    rng = np.random.default_rng(0)
    logmel = tf.constant((rng.standard_normal((batch, *spectrogram.shape)) * 20 - 50).astype(np.float16))
    stop = tf.constant(0, tf.int32)
    seed = views.step_seed(0, tf.constant(0, tf.int64), 0)

    started = time.perf_counter()
    step.train(logmel, stop)["loss"].numpy()
    compile_s = time.perf_counter() - started
    step_s = _seconds(lambda: step.train(logmel, stop)["loss"].numpy(), min_seconds)

    def make_views():
        return step.views(logmel, seed)[0].x[0, 0, 0, 0].numpy()

    make_views()  # its own compilation, outside the timing
    views_s = _seconds(make_views, min_seconds)
    log.info("%s %s jit=%s batch %d: %.2f s/step, views %.3f s (%.1f %%), first step %.0f s", size, precision, jit,
             batch, step_s, views_s, 100 * views_s / step_s, compile_s)
    return {"first_step_s": compile_s, "step_s": step_s, "views_s": views_s}


def input_stream_rate() -> float:
    """Examples/s of the trainer's input stream on one tf.data thread (``benchmarks.input_stream``)."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.input_stream", "--threads", "1"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["train_stream_examples_per_s"]


def _batches(values: list[str]) -> dict[str, int]:
    batches = dict(DEFAULT_BATCH)
    for value in values:
        size, _, number = value.partition("=")
        if size not in batches or not number.isdigit():
            raise SystemExit(f"--batch takes SIZE=N with SIZE one of {', '.join(batches)}, not {value!r}")
        batches[size] = int(number)
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_BATCH), choices=list(DEFAULT_BATCH))
    parser.add_argument("--batch", nargs="*", default=[], metavar="SIZE=N",
                        help=f"batch per model size (default {DEFAULT_BATCH})")
    parser.add_argument("--jit", nargs="+", choices=JIT_CHOICES,
                        help=f"--jit choices to measure for every size (default per size: {DEFAULT_SETTINGS})")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, help="precisions to measure for every size")
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="time each setting's step (and its views) over at least this long, after the "
                             "compiling first step; at least one step")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--input-stream", type=float, default=None, metavar="EXAMPLES_PER_S",
                        help="the input stream's examples/s per core, instead of running benchmarks.input_stream")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    batches = _batches(args.batch)
    settings = {size: DEFAULT_SETTINGS[size] if not (args.precisions or args.jit) else
                [(precision, jit) for precision in args.precisions or PRECISIONS for jit in args.jit or JIT_CHOICES]
                for size in args.models}
    precisions = sorted({precision for chosen in settings.values() for precision, _ in chosen})

    from benchmarks.flops import model_flops

    peaks = {}
    for precision in precisions:
        dtype = "bfloat16" if "bfloat16" in precision else "float32"
        peaks[precision] = {f"{'xla' if jit else 'no_xla'}_gflops": matmul_peak(dtype, jit, args.matmul_size) / 1e9
                            for jit in (False, True)}
        log.info("matmul peak %s: %s", dtype, peaks[precision])
    flops = {size: model_flops(size) for size in args.models}

    steps = []
    for size in args.models:
        per_example = flops[size]["counted"]["forward_backward"]
        for precision, jit in settings[size]:
            timing = step_speed(size, precision, jit, batches[size], args.min_seconds)
            examples_per_s = batches[size] / timing["step_s"]
            achieved = per_example * examples_per_s
            steps.append({
                "model": size, "precision": precision, "jit": jit, "batch": batches[size],
                "examples_per_s": round(examples_per_s, 3), **{k: round(v, 4) for k, v in timing.items()},
                "views_share": round(timing["views_s"] / timing["step_s"], 4),
                "achieved_gflops": round(achieved / 1e9, 2),
                "fraction_of_matmul_peak": round(achieved / 1e9 / max(peaks[precision].values()), 3),
            })

    result = {
        "benchmark": "training_step", "min_seconds_per_setting": args.min_seconds,
        "matmul_peak": {p: {k: round(v, 1) for k, v in values.items()} for p, values in peaks.items()},
        "flops": flops, "steps": steps,
    }
    if "base" in flops:
        needed = UTILISATION * H100_BF16_DENSE_FLOPS / flops["base"]["counted"]["forward_backward"]
        stream = args.input_stream or input_stream_rate()
        result["h100"] = {
            "assumed_bf16_dense_tflops": H100_BF16_DENSE_FLOPS / 1e12, "utilisation": UTILISATION,
            "base_examples_per_s_needed": round(needed, 1),
            "input_stream_examples_per_s_per_core": stream,
            "base_h100s_fed_per_host_core": round(stream / needed, 1),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
