"""The exported SavedModel: raw audio in, the trainer's embeddings out, loadable without MyGO."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from audioshards.audio import ClipSettings, make_clips
from audioshards.spectrogram import DEFAULT_CONFIG, log_mel
from training.export import load_encoder, normalisation
from training.saved_model import export_saved_model
from tests.signals import noise, sine, times

RATE = DEFAULT_CONFIG.sample_rate


def waveform(seconds: float, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = times(seconds, RATE)
    tone = sine(t, 523.25, 0.3) * (1 + sine(t, 0.7))
    audio = np.stack([tone + noise(rng, t.size, 0.01) for _ in range(channels)], axis=1)
    return audio.astype(np.float32)


def trainer_embeddings(run, audio):
    """What the trainer's encoder gives for the same clips through the pipeline's NumPy path."""
    encoder, metadata = load_encoder(f"{run}/encoder")
    mean, std = normalisation(metadata)
    clips = make_clips(audio, DEFAULT_CONFIG, ClipSettings())
    logmel = np.stack([log_mel(clip) for clip in clips])
    return encoder((logmel - mean[:, None, None]) / std[:, None, None]).numpy()


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):  # noqa: F811
    return export_saved_model(str(run_dir), str(tmp_path_factory.mktemp("export") / "model"))


def test_exported_embeddings_equal_the_trainers(exported, run_dir):  # noqa: F811
    model = tf.saved_model.load(exported)
    audio = waveform(23.0)  # two full windows and a 3 s remainder looped: three windows
    out = model.signatures["serving_default"](audio=tf.constant(audio))
    expected = trainer_embeddings(run_dir, audio)
    assert out["embedding"].shape == expected.shape == (3, expected.shape[1])
    np.testing.assert_allclose(out["embedding"].numpy(), expected, atol=2e-4, rtol=1e-3)
    np.testing.assert_array_equal(out["window_start_s"].numpy(), [0.0, 10.0, 20.0])


def test_mono_input_equals_duplicated_stereo(exported):
    model = tf.saved_model.load(exported)
    mono = waveform(4.0, channels=1)
    from_mono = model.signatures["embed_mono"](audio=tf.constant(mono[:, 0]))["embedding"].numpy()
    from_stereo = model.signatures["serving_default"](audio=tf.constant(np.repeat(mono, 2, axis=1)))
    np.testing.assert_allclose(from_mono, from_stereo["embedding"].numpy(), atol=1e-6)
    assert from_mono.shape[0] == 1


def test_loads_where_mygo_is_not_importable(exported, tmp_path):
    np.save(tmp_path / "audio.npy", waveform(12.0))
    script = textwrap.dedent(f"""
        import sys
        sys.modules["pipeline"] = None   # any import of this project now fails
        sys.modules["training"] = None
        sys.modules["audioshards"] = None
        import numpy as np, tensorflow as tf
        model = tf.saved_model.load({exported!r})
        out = model.signatures["serving_default"](audio=tf.constant(np.load({str(tmp_path / 'audio.npy')!r})))
        print(list(out["embedding"].shape))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # 12 s: a window and a looped 2 s remainder; tiny's cls+mean representation is 2 × 64 wide
    assert result.stdout.strip().splitlines()[-1] == "[2, 128]"


def test_description_is_written_beside_the_model(exported):
    description = json.loads((__import__("pathlib").Path(exported) / "mygo.json").read_text())
    assert description["encoder"]["spectrogram"] == DEFAULT_CONFIG.to_dict()
    assert description["windows"]["min_remainder_s"] == 2.0
