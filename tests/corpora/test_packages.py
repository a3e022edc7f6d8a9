"""The corpora's PyPI pins are what `make install` installs (setup.py's test extra)."""
import re
from pathlib import Path

from corpora import packages


def test_setup_py_test_extra_pins_every_corpus_package():
    setup = (Path(__file__).resolve().parents[2] / "setup.py").read_text()
    extra = re.search(r'"test": \[(.*?)\]', setup, re.DOTALL).group(1)
    for name, version in packages.PYPI.items():
        if version is None:  # pinned by the project itself
            continue
        assert f'"{name}=={version}"' in extra, f"setup.py's test extra lacks {name}=={version}"
