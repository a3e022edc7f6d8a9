"""Fixtures: a small shard directory made from generated audio (tones, noise, chirps).

``shard_audio_directory`` is the one place that turns audio files into shards. It follows the
shard contract with pipeline.shards (log_mel, ClipExample, write_shard, a manifest with band
statistics); swap its body for the real ``python -m pipeline --audio-dir ... --split train`` CLI
when that is wanted, nothing else here depends on how the shards were made.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import scipy.io.wavfile

from pipeline import shards
from pipeline.spectrogram import SpectrogramConfig, log_mel

SPECTROGRAM = SpectrogramConfig()
KINDS = ("tone", "noise", "chirp")
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
        path = directory / f"{kind}{i:03d}.wav"
        scipy.io.wavfile.write(path, rate, stereo.astype(np.float32))
        paths.append(path)
    return paths


def shard_audio_directory(audio_dir: pathlib.Path, out: pathlib.Path, num_shards: int = 2) -> pathlib.Path:
    """Shard every WAV in `audio_dir` (10 s each) into `out` as the train split, per DESIGN §2."""
    out.mkdir(parents=True, exist_ok=True)
    labels = [{"index": i, "mid": f"/t/{kind}", "display_name": kind} for i, kind in enumerate(KINDS)]
    by_shard: dict[int, list[shards.ClipExample]] = {i: [] for i in range(num_shards)}
    for path in sorted(audio_dir.glob("*.wav")):
        _, audio = scipy.io.wavfile.read(path)
        ytid = path.stem
        logmel = log_mel(audio.astype(np.float32), SPECTROGRAM).astype(np.float16)
        example = shards.ClipExample(
            clip_id=shards.clip_id(ytid, 0.0, 0), ytid=ytid, start_s=0.0, end_s=SPECTROGRAM.clip_seconds, chunk=0,
            labels=(KINDS.index(ytid.rstrip("0123456789")),), logmel=logmel)
        by_shard[shards.shard_index(shards.segment_key(ytid, 0.0), num_shards)].append(example)
    manifest = shards.new_manifest(SPECTROGRAM, labels, {"source": "tests/training/conftest.py"})
    stats = shards.BandStats.empty(SPECTROGRAM.n_mels)
    entries = []
    for index, examples in by_shard.items():
        examples.sort(key=lambda e: e.clip_id)
        for example in examples:
            stats.add_example(example.logmel)
        name = shards.shard_file_name("train", index, num_shards)
        count = shards.write_shard(str(out / name), (e.serialize() for e in examples))
        entries.append({"file": name, "examples": count})
    mean, std = stats.mean_std()
    manifest["splits"]["train"] = {"shards": entries, "examples": sum(e["examples"] for e in entries),
                                   "band_mean": mean, "band_std": std, "failures": {}}
    shards.write_json_atomic(shards.manifest_path(str(out)), manifest)
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
