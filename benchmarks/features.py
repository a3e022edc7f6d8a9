"""Milliseconds per 10 s stereo clip: our log-mel front ends against librosa and the FFT floor.

Prints one JSON object. Every variant runs in this process on the same clip, one thread each
(BLAS, FFT and TensorFlow threads pinned to 1 before the libraries load), so the ratios hold per
core. Times are CPU seconds of this process per call, best of five rounds that visit every
variant in turn: other processes sharing the cores slow CPU time less than wall time.

The floor is ``scipy.fft.rfft`` of the already windowed float64 frames, nothing else; it
allocates its 15 MB result on each call, so the JSON also gives the same FFTs as our front end
makes them (blocks of frames into a reused, cache-sized buffer), a floor no front end can beat
without a faster FFT. librosa
runs that same float64 FFT (plus its own framing and a dense 2049×256 product), so "8× faster
than librosa" cannot be met by any exact float64 front end unless librosa / floor ≥ 8: the JSON
reports that ratio as ``librosa_over_fft_floor``.

    python -m benchmarks.features [--repeats N]
"""
from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from typing import Callable  # noqa: E402

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import scipy.fft  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

from audioshards.spectrogram import DEFAULT_CONFIG, LogMel, analysis_window  # noqa: E402
from training.frontend import LogMelFrontEnd  # noqa: E402

TARGET_OVER_FLOOR = 1.3
TARGET_SPEED_UP_VS_LIBROSA = 8.0


def per_call_ms(variants: dict[str, tuple[Callable[[], object], int]], rounds: int = 5) -> dict[str, float]:
    """CPU ms per call of each (function, calls per round), best of ``rounds`` rounds.

    Rounds visit the variants in turn, so a burst of load on the shared machine hits all of
    them rather than the one that happened to be running; the first call warms up and compiles.
    """
    for function, _ in variants.values():
        function()
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, (function, calls) in variants.items():
            started = time.process_time()
            for _ in range(calls):
                function()
            best[name] = min(best[name], (time.process_time() - started) / calls * 1e3)
    return best


def blocked_fft(windowed: np.ndarray, rows: int) -> Callable[[], None]:
    """The FFT calls of :class:`LogMel` alone: ``rows`` frames at a time into one reused buffer."""
    spectrum = np.empty((windowed.shape[1] // 2 + 1, rows), np.complex128)

    def run() -> None:
        for start in range(0, windowed.shape[0], rows):
            block = windowed[start : start + rows]
            np.fft.rfft(block, axis=-1, out=spectrum[:, : block.shape[0]].T)

    return run


def tensorflow_variants(clip: np.ndarray) -> dict[str, Callable[[], np.ndarray]]:
    """The exported model's front end on a batch of one clip: eager, tf.function, XLA."""
    front_end = LogMelFrontEnd(DEFAULT_CONFIG)
    batch = tf.constant(clip[np.newaxis])
    variants = {
        "eager": front_end,
        "function": tf.function(front_end),
        "xla": tf.function(front_end, jit_compile=True),
    }
    return {name: (lambda run=run: run(batch)[0].numpy()) for name, run in variants.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    config = DEFAULT_CONFIG
    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal((config.clip_samples, config.channels))).astype(np.float32)
    channels_first = np.ascontiguousarray(clip.T)
    front_end = LogMel(config)

    def librosa_path() -> np.ndarray:
        power = librosa.feature.melspectrogram(
            y=channels_first, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
            win_length=config.win_length, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax)
        return librosa.power_to_db(power, ref=1.0, amin=config.amin, top_db=None).transpose(1, 2, 0)

    padded = np.pad(channels_first, ((0, 0), (config.n_fft // 2, config.n_fft // 2)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, config.n_fft, axis=-1)[:, :: config.hop_length]
    windowed64 = (frames * analysis_window(config)).reshape(-1, config.n_fft)
    windowed32 = windowed64.astype(np.float32)
    tensorflow = tensorflow_variants(clip)

    repeats = args.repeats
    ms = per_call_ms({
        "ours_ms": (lambda: front_end(clip), repeats),
        "librosa_ms": (librosa_path, max(3, repeats // 4)),
        "fft_floor_float64_ms": (lambda: scipy.fft.rfft(windowed64, axis=-1), repeats),
        "fft_floor_float32_ms": (lambda: scipy.fft.rfft(windowed32, axis=-1), repeats),
        "fft_blocked_float64_ms": (blocked_fft(windowed64, LogMel.block_frames * config.channels), repeats),
        **{f"tensorflow_{name}_ms": (run, repeats) for name, run in tensorflow.items()},
    })
    floor = ms["fft_floor_float64_ms"]
    ours, reference = front_end(clip), librosa_path()
    print(json.dumps({
        "benchmark": "features",
        "clip": f"{config.clip_seconds:g} s, {config.channels} channels, {config.sample_rate} Hz",
        **{key: round(value, 3) for key, value in ms.items()},
        "ours_over_fft_floor": round(ms["ours_ms"] / floor, 2),
        "ours_over_fft_blocked": round(ms["ours_ms"] / ms["fft_blocked_float64_ms"], 2),
        "speed_up_vs_librosa": round(ms["librosa_ms"] / ms["ours_ms"], 2),
        "librosa_over_fft_floor": round(ms["librosa_ms"] / floor, 2),
        **{f"tensorflow_{name}_over_fft_floor": round(ms[f"tensorflow_{name}_ms"] / floor, 2) for name in tensorflow},
        "targets": {
            "ours_over_fft_floor_at_most": TARGET_OVER_FLOOR,
            "met": ms["ours_ms"] / floor <= TARGET_OVER_FLOOR,
            "speed_up_vs_librosa_at_least": TARGET_SPEED_UP_VS_LIBROSA,
            "reachable_by_an_exact_float64_front_end": ms["librosa_ms"] / floor >= TARGET_SPEED_UP_VS_LIBROSA,
        },
        "max_abs_difference_db": {
            "ours_vs_librosa": float(np.abs(ours - reference).max()),
            **{f"tensorflow_{name}_vs_ours": float(np.abs(run() - ours).max()) for name, run in tensorflow.items()},
        },
        "threads": 1,
        "timer": "process CPU time, best of 5 rounds",
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
    }))


if __name__ == "__main__":
    main()
