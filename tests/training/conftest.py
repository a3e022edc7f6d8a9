"""Fixtures shared by the trainer's tests, each made once per test process.

- ``shard_dir``: a read-only shard directory of 36 generated clips (tones, noise, chirps) in 2
  shards, made once per test run: the first pytest-xdist worker to need it makes it, the others
  wait for it and read the same files (``made_once``). ``shard_audio_directory`` is the one place
  that turns audio files into shards: it runs the real job (``pipeline.run.run``: Beam's
  DirectRunner, ffmpeg, the shard writer) inside this process (``--direct_running_mode=in_memory``),
  with an AudioSet-format CSV that labels each clip with the AudioSet class of its kind. The job's
  own tests run it as users do, in worker processes.
- ``run_dir``: a run directory holding an exported (untrained) tiny encoder.
- ``labelled_audio``: a folder per class of tones, with a CSV of folds.
- ``train_in_process``: ``python -m training train ARGS`` for cases that fail fast (bad files,
  bad settings), run by ``training.__main__.main`` in this process: exit code and console text,
  without a TensorFlow start-up per case. Runs that train use ``run_training`` (a subprocess: its own
  device set-up).
"""
from __future__ import annotations

import contextlib
import fcntl
import shutil
from collections.abc import Callable, Iterator

import logging
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import scipy.io.wavfile

from audioshards.spectrogram import SpectrogramConfig
from tests.signals import write_tone

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
    """Shard every WAV in `audio_dir` (10 s each) into `out` as the train split, with the real job
    run in this process; labels come from the kind in each file's name."""
    from pipeline.config import JobConfig
    from pipeline.run import run

    rows = ["# YTID, start_seconds, end_seconds, positive_labels"]
    for path in sorted(audio_dir.glob("*.wav")):
        rows.append(f'{path.stem}, 0.000, 10.000, "{KIND_MIDS[path.stem.split("_")[0]]}"')
    csv = out.parent / f"{out.name}-segments.csv"
    csv.write_text("\n".join(rows) + "\n")
    config = JobConfig(split="train", out=str(out), cache=str(out.parent / f"{out.name}-cache"), segments=(str(csv),),
                       audio_dir=str(audio_dir), num_shards=num_shards, workers=1)
    run(config, ["--direct_running_mode=in_memory"], argv=["shard_audio_directory"])
    return out


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[pathlib.Path], None]) -> pathlib.Path:
    """The directory ``name``, made by ``make(directory)`` once per test run: pytest-xdist's workers
    are processes with one base temporary directory; the first to get the lock makes it, the others
    wait and reuse it. A directory that was not finished (its maker failed) is made again."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's directory, above each worker's own
    directory, finished = root / name, root / f"{name}.finished"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not finished.exists():
            shutil.rmtree(directory, ignore_errors=True)
            make(directory)
            finished.touch()
    return directory


@pytest.fixture(scope="session")
def shard_dir(tmp_path_factory) -> pathlib.Path:
    """A read-only shard directory of 36 generated clips in 2 shards (copy it before changing it)."""
    def make(root: pathlib.Path) -> None:
        generate_audio(root / "audio")
        shard_audio_directory(root / "audio", root / "shards")

    return made_once(tmp_path_factory, "training_data", make) / "shards"


def run_training(*args: str, env: dict | None = None, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """`python -m training <args>` in a fresh process (its own TensorFlow device set-up)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", "training", *args], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=timeout, **popen)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, shard_dir):
    """A run directory holding an exported (untrained) tiny encoder and the data's statistics."""
    import keras

    from audioshards import shards
    from training.config import Config
    from training.export import export_encoder
    from training.vit.model import build_models

    run = tmp_path_factory.mktemp("probe_run")
    keras.utils.set_random_seed(3)
    encoder, _ = build_models(Config().model)
    split = shards.read_manifest(str(shard_dir))["splits"]["train"]
    manifest = shards.read_manifest(str(shard_dir))
    export_encoder(encoder, Config(), manifest["spectrogram"], split["band_mean"], split["band_std"], 0,
                   str(run / "encoder"))
    return run


#: The labelled audio's rate: not the shards' rate, so the probe resamples.
AUDIO_RATE = 22_050


@pytest.fixture(scope="session")
def labelled_audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("labelled_audio")
    rows = ["path,label,fold"]
    for label, base in (("low", 200), ("high", 3000)):
        (root / label).mkdir()
        for index in range(6):
            write_tone(root / label / f"{index}.wav", 3.0 + index * 2.5, frequency=base + 37 * index, rate=AUDIO_RATE)
            rows.append(f"{label}/{index}.wav,{label},{index % 3}")
    (root / "meta.csv").write_text("\n".join(rows) + "\n")
    return root


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """Undoes the logging set-up a command's ``main`` installs (root handlers and levels)."""
    root, ours = logging.getLogger(), logging.getLogger("training")
    saved = root.handlers[:], root.level, ours.level
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in saved[0]:
                handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        ours.setLevel(saved[2])


@pytest.fixture
def train_in_process(capsys: pytest.CaptureFixture) -> Callable[..., subprocess.CompletedProcess]:
    """``train_in_process(*argv)`` → CompletedProcess(returncode, stdout, stderr) of the train command
    run in this process; the logging set-up it installs is undone afterwards."""
    from training.__main__ import main

    def run(*argv: str) -> subprocess.CompletedProcess:
        with logging_kept():
            code = main(["train", *argv])
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(["train", *argv], code, captured.out, captured.err)

    return run
