"""The small offline corpora (``python -m corpora.build --size small``), built once per test run
for the corpus tests to check."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPORA = ("pretrain", "keywords", "instruments")


def build(out: str, seed: int = 0, what: str = "all") -> dict:
    """Run the builder; return {corpus: manifest}."""
    result = subprocess.run(
        [sys.executable, "-m", "corpora.build", "--out", out, "--size", "small",
         "--seed", str(seed), "--what", what],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    corpora = CORPORA if what == "all" else (what,)
    return {name: json.load(open(os.path.join(out, name, "manifest.json"))) for name in corpora}


@pytest.fixture(scope="session")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    out = str(tmp_path_factory.mktemp("corpora"))
    return out, build(out)
