"""The console commands the package installs (mygo-shards, mygo-train) run the same programs as
``python -m pipeline`` and ``python -m training``: users type tool names, scripts keep ``-m``."""
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

COMMANDS = {"mygo-shards": "pipeline.__main__:main", "mygo-train": "training.__main__:main"}
QUIET = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def installed_script(name: str) -> str:
    """The script in this interpreter's bin directory (make install's editable install puts it there)."""
    bin_dir = sysconfig.get_path("scripts")
    path = shutil.which(name, path=bin_dir) or shutil.which(name, path=os.path.dirname(sys.executable))
    assert path, f"{name} is not installed next to {sys.executable}: run make install (pip install -e .)"
    return path


def test_the_package_declares_both_commands():
    declared = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")
                if e.name.startswith("mygo-")}
    assert declared == COMMANDS


@pytest.mark.parametrize("command", [["mygo-shards", "--help"], ["mygo-train", "--help"],
                                     ["mygo-train", "train", "--help"], ["mygo-train", "export", "--help"]])
def test_each_command_runs_and_shows_its_help(command: list[str]):
    result = subprocess.run([installed_script(command[0]), *command[1:]], capture_output=True, text=True,
                            timeout=300, env=QUIET)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_python_dash_m_still_works():
    for module in ("pipeline", "training"):
        result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                                timeout=300, env=QUIET)
        assert result.returncode == 0, result.stderr
