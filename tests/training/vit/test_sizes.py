"""training.vit: the model-size table, light enough for the command line to read without TensorFlow."""
import subprocess
import sys

import pytest

from tests.training.conftest import REPO
from training.config import Config, ModelConfig
from training.vit import LEARNING_RATES, MODEL_SIZES

NUMBERS = {"width", "depth", "heads", "mlp_dim", "projector_hidden", "projector_dim"}


def test_the_size_table_and_the_settings_import_without_tensorflow_or_keras():
    code = ("import sys, training.vit, training.config\n"
            "print(sorted(name for name in ('tensorflow', 'keras', 'training.vit.model') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


def test_the_sizes_and_their_learning_rates():
    assert list(MODEL_SIZES) == list(LEARNING_RATES) == ["tiny", "small", "base"]  # --model's choices, in order
    assert all(set(numbers) == NUMBERS for numbers in MODEL_SIZES.values())
    assert all(numbers["width"] % numbers["heads"] == 0 for numbers in MODEL_SIZES.values())
    assert MODEL_SIZES["small"] == dict(width=384, depth=12, heads=6, mlp_dim=1536, projector_hidden=2048,
                                        projector_dim=128)
    assert LEARNING_RATES == {"tiny": 3e-3, "small": 5e-4, "base": 3e-4}


@pytest.mark.parametrize("size", list(MODEL_SIZES))
def test_a_size_fills_the_unset_numbers_and_the_default_lr(size):
    config = Config(model=ModelConfig(size=size))
    assert {name: getattr(config.model, name) for name in NUMBERS} == MODEL_SIZES[size]
    assert config.optim.lr == LEARNING_RATES[size]
    assert Config(model=ModelConfig(size=size, depth=3)).model.depth == 3
