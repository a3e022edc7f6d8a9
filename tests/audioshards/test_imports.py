"""The roles' import boundaries: the trainer and the shard contract need neither Beam nor yt-dlp."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

# Importing a module whose sys.modules entry is None raises ImportError: the module is, to this
# process, not installed.
BLOCK = "import sys\nfor name in ('apache_beam', 'yt_dlp', 'yt_dlp_ejs', 'deno'):\n    sys.modules[name] = None\n"


def run_without_pipeline_dependencies(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_the_block_makes_beam_unimportable():
    # Proves the harness: without it the boundary tests below would pass vacuously.
    result = run_without_pipeline_dependencies("import apache_beam")
    assert result.returncode != 0 and "import of apache_beam halted" in result.stderr


#: Every module of the contract and of the trainer (the trainer's --help is checked below).
MODULES = sorted(".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                 for package in ("audioshards", "training") for path in (ROOT / package).rglob("*.py")
                 if path.name != "__main__.py")


def test_every_contract_and_trainer_module_imports_without_beam_or_yt_dlp():
    # One process imports them all (TensorFlow once) and names each module that fails.
    code = ("import importlib, traceback\nfailed = []\n"
            f"for name in {MODULES!r}:\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except Exception:\n        failed.append(name + ': ' + traceback.format_exc(limit=1))\n"
            "print('FAILED', failed)")
    result = run_without_pipeline_dependencies(code)
    assert result.returncode == 0, result.stderr
    assert "training.data" in MODULES and "audioshards.tfrecord" in MODULES and len(MODULES) > 20
    assert result.stdout.strip().splitlines()[-1] == "FAILED []", result.stdout


def test_trainer_help_runs_without_beam_or_yt_dlp():
    code = "import sys, runpy\nsys.argv = ['training', 'train', '--help']\nrunpy.run_module('training', run_name='__main__')"
    result = run_without_pipeline_dependencies(code)
    assert result.returncode == 0, result.stderr
    assert "--shards" in result.stdout


def test_no_training_or_contract_module_imports_the_job_package():
    # Lazy imports inside functions count too: the text of every module is checked.
    offenders = [str(path.relative_to(ROOT)) for package in ("audioshards", "training")
                 for path in sorted((ROOT / package).rglob("*.py"))
                 if any(line.strip().startswith(("from pipeline", "import pipeline", "import apache_beam",
                                                 "from apache_beam"))
                        for line in path.read_text().splitlines())]
    assert offenders == []
