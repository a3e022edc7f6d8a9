"""The trainer's command line says what is wrong, and says it fast: misspelt choices are refused
before TensorFlow is imported, metavars name what to type, a missing run is named plainly."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from training.__main__ import parser

REPO = pathlib.Path(__file__).resolve().parents[2]

# Each flag with a fixed set of values, and a value outside it.
CHOICE_FLAGS = ["--model", "--precision", "--jit", "--pool", "--invariance", "--sigreg-samples", "--projector-norm"]

BAD_CHOICES_SCRIPT = """
import contextlib, io, sys
from training.__main__ import main
for flag in sys.argv[1:]:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            code = main(["train", flag, "huge", "--shards", "x", "--out", "y"])
        except SystemExit as exit:
            code = exit.code
    print(flag, code, "tensorflow" in sys.modules, repr(stderr.getvalue().strip().splitlines()[-1]))
"""


def training(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training", *argv], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def test_a_bad_choice_exits_2_naming_its_flag_before_tensorflow_is_imported():
    result = subprocess.run([sys.executable, "-c", BAD_CHOICES_SCRIPT, *CHOICE_FLAGS], capture_output=True,
                            text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) == len(CHOICE_FLAGS), result.stdout
    for flag, line in zip(CHOICE_FLAGS, lines):
        name, code, tensorflow_imported, message = line.split(" ", 3)
        assert (name, code, tensorflow_imported) == (flag, "2", "False"), line
        assert f"argument {flag}: invalid choice: 'huge'" in message, line


@pytest.mark.parametrize("flag, metavar", [("--keep-checkpoints", "N"), ("--lr", "X"), ("--shards", "SHARD_DIR"),
                                           ("--out", "RUN_DIR"), ("--global-crop", "LOW HIGH"),
                                           ("--model", "{tiny,small,base}")])
def test_metavars_say_what_to_type(flag: str, metavar: str):
    train = parser()._subparsers._group_actions[0].choices["train"]
    usage = " ".join(train.format_usage().split())
    assert f"[{flag} {metavar}]" in usage
    assert "CHECKPOINTS" not in usage


@pytest.mark.parametrize("command", ["export", "viz"])
def test_a_missing_run_is_named_without_errno_and_no_out_is_created(command: str, tmp_path):
    out = tmp_path / "out"
    extra = ["--audio", str(tmp_path / "audio")] if command == "viz" else []
    result = training(command, "--run", str(tmp_path / "no-run"), "--out", str(out), *extra)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"--run {tmp_path / 'no-run'}: no such run directory" in result.stderr
    assert "Errno" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_a_directory_without_an_encoder_is_not_taken_for_a_run(tmp_path):
    result = training("export", "--run", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "no exported encoder in it (encoder/encoder.json" in result.stderr
    assert "Errno" not in result.stderr


def test_viz_checks_its_audio_before_creating_out(tmp_path):
    run = tmp_path / "run"
    os.makedirs(run / "encoder")
    (run / "encoder" / "encoder.json").write_text("{}")
    out = tmp_path / "pictures"
    result = training("viz", "--run", str(run), "--audio", str(tmp_path / "missing.csv"), "--out", str(out))
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"--audio {tmp_path / 'missing.csv'}: no such folder or CSV" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("command, flag, guess, required", [
    ("train", "--setps", "--steps", ["--shards", "s", "--out", "o"]),
    ("probe", "--basline", "--baselines", ["--run", "r", "--shards", "s"]),
])
def test_a_misspelt_flag_prints_its_subcommands_usage_and_the_closest_flags(capsys, command, flag, guess, required):
    from training.__main__ import main

    with pytest.raises(SystemExit) as exit:
        main([command, flag, "3", *required])
    error = capsys.readouterr().err
    assert exit.value.code == 2
    assert error.startswith(f"usage: python -m training {command} ")
    assert f"python -m training {command}: error: unrecognized arguments: {flag} 3 (did you mean {guess}" in error


def test_train_flags_may_be_spelt_in_snake_case():
    from training.__main__ import parse

    args = parse(["train", "--shards", "s", "--out", "o", "--keep_checkpoints", "2", "--global_frames=106"])
    from training.config import given_settings

    assert given_settings(args) == {"run.shards": "s", "run.out": "o", "run.keep_checkpoints": 2,
                                    "views.global_frames": 106}
