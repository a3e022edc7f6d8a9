"""Fixtures: a small shard directory made from generated audio (tones, noise, chirps).

``shard_audio_directory`` is the one place that turns audio files into shards: it runs the real
pipeline (``python -m pipeline --segments CSV --audio-dir DIR``, Beam's local runner, ffmpeg),
with an AudioSet-format CSV that labels each clip with the AudioSet class of its kind.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import scipy.io.wavfile

from audioshards.spectrogram import SpectrogramConfig

SPECTROGRAM = SpectrogramConfig()
KINDS = ("tone", "noise", "chirp")
#: AudioSet classes of the kinds (pipeline/data/class_labels_indices.csv): Sine wave, Noise, Chirp tone.
KIND_MIDS = {"tone": "/m/01v_m0", "noise": "/m/096m7z", "chirp": "/m/0hdsk"}


def ytid(kind: str, index: int) -> str:
    """An AudioSet-form id (11 characters) that names the clip's kind: tone_000000, noise_00001, ..."""
    return f"{kind}_{index:0{10 - len(kind)}d}"
REPO = pathlib.Path(__file__).resolve().parents[2]


def generate_audio(directory: pathlib.Path, clips: int = 36, seed: int = 0) -> list[pathlib.Path]:
    """10 s stereo WAVs with learnable structure: a harmonic tone with a rhythm, band-limited noise
    bursts, or a chirp; frequency, rate and stereo balance vary per clip."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rate, samples = SPECTROGRAM.sample_rate, SPECTROGRAM.clip_samples
    t = np.arange(samples) / rate
    paths = []
    for i in range(clips):
        kind = KINDS[i % len(KINDS)]
        if kind == "tone":
            f0 = rng.uniform(110, 880)
            signal = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3))
            signal *= 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * rng.uniform(0.5, 4) * t))  # on/off rhythm
        elif kind == "noise":
            white = rng.normal(size=samples)
            spectrum = np.fft.rfft(white)
            freqs = np.fft.rfftfreq(samples, 1 / rate)
            centre = rng.uniform(500, 8000)
            spectrum *= np.exp(-0.5 * ((freqs - centre) / (centre / 4)) ** 2)
            signal = np.fft.irfft(spectrum, samples)
            signal /= np.abs(signal).max()
            signal *= (np.sin(2 * np.pi * rng.uniform(0.2, 2) * t) > 0)  # bursts
        else:
            f_start, f_end = rng.uniform(200, 1000), rng.uniform(2000, 10000)
            sweep = rng.uniform(0.5, 2.0)  # seconds per sweep
            phase_t = (t % sweep) / sweep
            frequency = f_start * (f_end / f_start) ** phase_t
            signal = np.sin(2 * np.pi * np.cumsum(frequency) / rate)
        balance = rng.uniform(0.3, 1.0)
        stereo = np.stack([signal * balance, signal * (1.3 - balance)], axis=1)
        stereo = (0.3 * stereo / (np.abs(stereo).max() + 1e-9) + 1e-4 * rng.normal(size=stereo.shape))
        path = directory / f"{ytid(kind, i)}.wav"
        scipy.io.wavfile.write(path, rate, stereo.astype(np.float32))
        paths.append(path)
    return paths


def shard_audio_directory(audio_dir: pathlib.Path, out: pathlib.Path, num_shards: int = 2) -> pathlib.Path:
    """Shard every WAV in `audio_dir` (10 s each) into `out` as the train split, with the real
    pipeline; labels come from the kind in each file's name."""
    rows = ["# YTID, start_seconds, end_seconds, positive_labels"]
    for path in sorted(audio_dir.glob("*.wav")):
        rows.append(f'{path.stem}, 0.000, 10.000, "{KIND_MIDS[path.stem.split("_")[0]]}"')
    csv = out.parent / f"{out.name}-segments.csv"
    csv.write_text("\n".join(rows) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "--segments", str(csv), "--audio-dir", str(audio_dir), "--split", "train",
         "--out", str(out), "--cache", str(out.parent / f"{out.name}-cache"), "--num-shards", str(num_shards),
         "--workers", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"the pipeline failed:\n{result.stderr[-3000:]}")
    return out


@pytest.fixture(scope="session")
def shard_dir(tmp_path_factory) -> pathlib.Path:
    """A read-only shard directory of 36 generated clips in 2 shards (copy it before changing it)."""
    root = tmp_path_factory.mktemp("training_data")
    generate_audio(root / "audio")
    return shard_audio_directory(root / "audio", root / "shards")


def run_training(*args: str, env: dict | None = None, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """`python -m training <args>` in a fresh process (its own TensorFlow device set-up)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", "training", *args], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=timeout, **popen)
