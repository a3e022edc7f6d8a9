"""The Docker images: lint-clean, and pinned to the versions setup.py installs everywhere else."""
import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))


def setup_pins() -> dict[str, str]:
    """Module-level string constants of setup.py, e.g. TENSORFLOW = "tensorflow==2.21.0"."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    return {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def base_image(dockerfile: Path) -> str:
    (line,) = [line for line in dockerfile.read_text().splitlines() if line.startswith("FROM ")]
    return line.split()[1]


def test_both_images_exist():
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.pipeline", "Dockerfile.train"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile):
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    result = subprocess.run([hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_images_pin_the_versions_of_setup_py():
    pins = setup_pins()
    beam = re.fullmatch(r"apache-beam\[tfrecord\]==(.+)", pins["APACHE_BEAM"]).group(1)
    tensorflow = re.fullmatch(r"tensorflow==(.+)", pins["TENSORFLOW"]).group(1)
    python = re.search(r'python_requires=">=(\d+\.\d+)"', (ROOT / "setup.py").read_text()).group(1)
    assert base_image(ROOT / "docker/Dockerfile.pipeline") == f"apache/beam_python{python}_sdk:{beam}"
    assert base_image(ROOT / "docker/Dockerfile.train") == f"tensorflow/tensorflow:{tensorflow}-gpu"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_install_through_the_makefiles_script(dockerfile):
    text = dockerfile.read_text()
    assert "RUN ./docker/install.sh" in text
    for needed in ("setup.py", "audioshards", "docker/install.sh"):
        assert re.search(rf"^COPY {re.escape(needed)} ", text, re.MULTILINE), f"{dockerfile.name} does not copy {needed}"
    assert "docker/install.sh --venv" in (ROOT / "Makefile").read_text()


def test_install_script_is_valid_bash_and_rejects_unknown_options():
    script = ROOT / "docker/install.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    result = subprocess.run([str(script), "--frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown option --frobnicate" in result.stderr


@pytest.mark.parametrize("dockerfile, role, other", [("Dockerfile.pipeline", "pipeline", "training"),
                                                     ("Dockerfile.train", "train", "pipeline")])
def test_each_image_installs_its_role_only(dockerfile, role, other):
    text = (ROOT / "docker" / dockerfile).read_text()
    assert re.search(rf"^RUN \./docker/install\.sh --extras {role}$", text, re.MULTILINE)
    assert not re.search(rf"^COPY {other} ", text, re.MULTILINE)


def test_training_image_runs_the_trainer():
    assert 'ENTRYPOINT ["python", "-m", "training"]' in (ROOT / "docker/Dockerfile.train").read_text()
    assert "ENTRYPOINT" not in (ROOT / "docker/Dockerfile.pipeline").read_text()  # Beam's boot stays
