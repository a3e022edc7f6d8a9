"""Settings: flags generated from the dataclasses, model sizes, validation, resume rules."""
import json

import pytest

from training import config as config_module
from training.__main__ import parser, resolve_train_config
from training.config import Config, UsageError, config_from_settings


def parse(*flags: str) -> Config:
    args = parser().parse_args(["train", *flags])
    return config_module.config_from_settings(config_module.given_settings(args))


def test_flags_reach_every_section():
    config = parse("--shards", "s", "--out", "o", "--model", "small", "--batch", "64", "--steps", "7", "--lr", "1e-3",
                   "--lambda", "0.1", "--global-views", "3", "--local-views", "4", "--precision", "mixed_float16",
                   "--checkpoint-every", "5", "--seed", "9", "--cpu-devices", "2", "--local-crop", "0.1", "0.3",
                   "--global-volume-db", "2", "--local-patch-mask", "0.5", "--skip-corrupt", "--no-deterministic")
    assert (config.model.size, config.model.width, config.model.depth, config.model.heads) == ("small", 384, 12, 6)
    assert (config.run.batch, config.run.steps, config.run.checkpoint_every, config.run.seed) == (64, 7, 5, 9)
    assert (config.run.cpu_devices, config.run.precision, config.run.skip_corrupt) == (2, "mixed_float16", True)
    assert config.optim.lr == 1e-3 and config.loss.lambda_ == 0.1
    assert (config.views.global_views, config.views.local_views, config.views.local_crop) == (3, 4, (0.1, 0.3))
    assert config.views.global_augment.volume_db == 2 and config.views.local_augment.patch_mask == 0.5
    assert Config.from_dict(json.loads(config.to_json())) == config


def test_model_sizes_and_overrides():
    assert parse("--model", "base").model.width == 768
    assert parse("--model", "base", "--depth", "2").model.depth == 2
    assert parse().model.size == "tiny" and parse().model.width == 64


@pytest.mark.parametrize("flags, message", [
    (["--global-frames", "100"], "multiple of 10 .* try 96"),
    (["--steps", "5", "--epochs", "2"], "not both"),
    (["--local-crop", "0.5", "0.2"], "low <= high"),
    (["--local-channel-drop", "1.5"], "probability"),
])
def test_invalid_settings_say_what_to_do(flags, message):
    with pytest.raises(UsageError, match=message):
        parse(*flags)


@pytest.mark.parametrize("settings, message", [({"model.size": "huge"}, "--model must be one of"),
                                               ({"run.precision": "fp8"}, "--precision must be one of"),
                                               ({"loss.invariance": "l1"}, "--invariance must be sum or mean")])
def test_choices_are_checked_again_for_a_saved_config(settings, message):
    """argparse refuses these flags (tests/training/test_cli_usage.py); a hand-edited config.json is checked here."""
    with pytest.raises(UsageError, match=message):
        config_from_settings(settings)


def test_help_lists_the_contract_flags(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--shards", "--out", "--model", "--batch", "--steps", "--epochs", "--lr", "--lambda",
                 "--global-views", "--local-views", "--precision", "--checkpoint-every", "--seed", "--cpu-devices",
                 "--skip-corrupt"):
        assert flag in text


def test_new_run_needs_shards_and_resume_uses_the_saved_config(tmp_path):
    with pytest.raises(UsageError, match="--shards"):
        resolve_train_config({"run.out": str(tmp_path / "new")})
    saved = Config().replace(**{"run.shards": "s", "run.out": str(tmp_path), "run.epochs": 3.0, "model.size": "small"})
    (tmp_path / "config.json").write_text(saved.to_json())
    config, resumed = resolve_train_config({"run.out": str(tmp_path)})
    assert resumed and config == saved
    config, _ = resolve_train_config({"run.out": str(tmp_path), "run.steps": 100})
    assert config.run.steps == 100 and config.run.epochs is None
    with pytest.raises(UsageError, match="--model: the run was started with 'small', now 'tiny'"):
        resolve_train_config({"run.out": str(tmp_path), "model.size": "tiny"})


def test_run_length_from_steps_or_epochs():
    from training.train import total_steps

    assert total_steps(Config().replace(**{"run.steps": 7}), train_examples=36) == 7
    assert total_steps(Config().replace(**{"run.epochs": 2.0, "run.batch": 8}), train_examples=36) == 9
    assert total_steps(Config().replace(**{"run.batch": 36}), train_examples=36) == 100  # default: 100 epochs


# --------------------------------------------------------------------------------------------
# --config FILE
# --------------------------------------------------------------------------------------------


def test_a_config_file_gives_settings_and_flags_win(tmp_path):
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"model": {"size": "small"}, "run": {"batch": 64, "steps": 10},
                                "views": {"global_crop": [0.7, 1.0]}}))
    settings = config_module.settings_from_file(str(path), {"run.steps": 20})
    assert settings == {"model.size": "small", "run.batch": 64, "run.steps": 20, "views.global_crop": (0.7, 1.0)}
    config = config_module.config_from_settings(settings)
    assert (config.model.width, config.run.batch, config.run.steps, config.optim.lr) == (384, 64, 20, 5e-4)


def test_a_saved_config_with_another_model_size_brings_that_sizes_numbers(tmp_path):
    saved = config_module.config_from_settings({"model.size": "tiny", "run.out": "runs/a", "run.shards": "s"})
    path = tmp_path / "config.json"
    path.write_text(saved.to_json())
    settings = config_module.settings_from_file(str(path), {"model.size": "small", "run.out": "runs/b"})
    config = config_module.config_from_settings(settings)
    assert (config.model.size, config.model.width, config.model.depth) == ("small", 384, 12)
    assert config.optim.lr == 5e-4 and config.run.out == "runs/b" and config.run.shards == "s"


def test_a_bad_config_file_is_named(tmp_path):
    with pytest.raises(config_module.UsageError, match="--config .*missing.json: no such file"):
        config_module.settings_from_file(str(tmp_path / "missing.json"), {})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"run": {"batch": "many"}}))
    with pytest.raises(config_module.UsageError, match="bad.json: run.batch is 'many' \\(str\\), expected int"):
        config_module.settings_from_file(str(path), {})


def test_train_starts_a_new_run_from_a_config_file(tmp_path, train_in_process):
    path = tmp_path / "variant.json"
    path.write_text(json.dumps({"model": {"size": "tiny"}, "run": {"batch": 8, "steps": 7}}))
    run = tmp_path / "run"
    # No shards there: the run stops at its data (exit 2), after writing the config it resolved.
    result = train_in_process("--config", str(path), "--out", str(run), "--shards", str(tmp_path / "none"),
                              "--steps", "9")
    assert result.returncode == 2 and "no manifest.json in" in result.stdout + result.stderr
    written = json.loads((run / "config.json").read_text())
    assert (written["run"]["batch"], written["run"]["steps"], written["model"]["width"]) == (8, 9, 64)
