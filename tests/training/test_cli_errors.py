"""``python -m training train`` on damaged files: the file and the problem named, exit code 2, no traceback.
(Run in this process by the ``train_in_process`` fixture: each case fails before training.)"""
from __future__ import annotations

import json

from training import config as config_module


def assert_refused(result, message: str) -> None:
    """Exit code 2, the message (file and problem) on the console, no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert message in output
    assert "Traceback" not in output


def test_a_damaged_manifest_is_named_and_exits_2(tmp_path, train_in_process):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "manifest.json").write_text('{"format_version": 1, "splits": {"train": {"shards": [')
    result = train_in_process("--shards", str(shards), "--out", str(tmp_path / "run"), "--model", "tiny", "--steps", "1")
    assert_refused(result, f"{shards}/manifest.json: not valid JSON")


def test_a_saved_config_value_of_the_wrong_type_is_named_and_exits_2(tmp_path, train_in_process):
    run = tmp_path / "run"
    run.mkdir()
    values = config_module.config_from_settings({"run.out": str(run), "run.shards": str(tmp_path)}).to_dict()
    values["run"]["batch"] = "sixteen"
    (run / "config.json").write_text(json.dumps(values))
    result = train_in_process("--out", str(run))
    assert_refused(result, f"{run}/config.json: run.batch is 'sixteen' (str), expected int")


def test_a_saved_config_that_is_not_json_is_named_and_exits_2(tmp_path, train_in_process):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"run": {"batch": 16,')
    result = train_in_process("--out", str(run))
    assert_refused(result, f"{run}/config.json: not a readable JSON file")
