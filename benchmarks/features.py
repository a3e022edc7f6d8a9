"""Milliseconds per 10 s stereo clip: our log-mel front end against librosa and the FFT floor.

Prints one JSON object. Every variant runs in this process on the same clip, one thread each
(BLAS and FFT threads pinned to 1 before NumPy loads), so the ratios hold per core:

    python -m benchmarks.features [--repeats N]
"""
from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import scipy.fft  # noqa: E402

from pipeline.spectrogram import DEFAULT_CONFIG, LogMel  # noqa: E402


def per_call_ms(function, repeats: int) -> float:
    function()  # warm-up: caches, allocations, lazy imports
    best = float("inf")
    for _ in range(3):  # best of three rounds: the least disturbed by other processes
        started = time.perf_counter()
        for _ in range(repeats):
            function()
        best = min(best, (time.perf_counter() - started) / repeats * 1e3)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    config = DEFAULT_CONFIG
    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal((config.clip_samples, config.channels))).astype(np.float32)
    channels_first = np.ascontiguousarray(clip.T)
    front_end = LogMel(config)

    def ours():
        return front_end(clip)

    def librosa_path():
        power = librosa.feature.melspectrogram(
            y=channels_first, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
            win_length=config.win_length, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax)
        return librosa.power_to_db(power, ref=1.0, amin=config.amin, top_db=None)

    padded = np.pad(channels_first, ((0, 0), (config.n_fft // 2, config.n_fft // 2)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, config.n_fft, axis=-1)[:, :: config.hop_length]
    windowed64 = (frames * front_end.window).reshape(-1, config.n_fft)
    windowed32 = windowed64.astype(np.float32)

    results = {
        "ours_ms": per_call_ms(ours, args.repeats),
        "librosa_ms": per_call_ms(librosa_path, max(3, args.repeats // 4)),
        "fft_floor_float64_ms": per_call_ms(lambda: scipy.fft.rfft(windowed64, axis=-1), args.repeats),
        "fft_floor_float32_ms": per_call_ms(lambda: scipy.fft.rfft(windowed32, axis=-1), args.repeats),
    }
    difference = np.abs(ours() - librosa_path().transpose(1, 2, 0)).max()
    print(json.dumps({
        "benchmark": "features",
        "clip": f"{config.clip_seconds:g} s, {config.channels} channels, {config.sample_rate} Hz",
        **{key: round(value, 3) for key, value in results.items()},
        "speed_up_vs_librosa": round(results["librosa_ms"] / results["ours_ms"], 2),
        "ours_over_fft_floor": round(results["ours_ms"] / results["fft_floor_float64_ms"], 2),
        "max_abs_difference_db": float(difference),
        "threads": 1,
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
    }))


if __name__ == "__main__":
    main()
