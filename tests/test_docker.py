"""The Docker images: lint-clean, pinned to the versions setup.py installs everywhere else, and
layered so a code change reuses the dependencies. Building and running them: make docker-check."""
import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))
ROLES = [("Dockerfile.pipeline", "pipeline", "training"), ("Dockerfile.train", "train", "pipeline")]


def setup_pins() -> dict[str, str]:
    """Module-level string constants of setup.py, e.g. TENSORFLOW = "tensorflow==2.21.0"."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    return {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def instructions(dockerfile: Path) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    joined = re.sub(r"\s*\\\n\s*", " ", dockerfile.read_text())
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def base_image(dockerfile: Path) -> str:
    """The default of ARG BASE, which the only FROM uses (a local base is one --build-arg away)."""
    lines = instructions(dockerfile)
    (line,) = [line for line in lines if line.startswith("FROM ")]
    assert line == "FROM ${BASE}", line
    (arg,) = [line for line in lines if line.startswith("ARG BASE=")]
    assert lines.index(arg) < lines.index(line)
    return arg.removeprefix("ARG BASE=")


def test_both_images_exist():
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.pipeline", "Dockerfile.train"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
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
    lines = instructions(dockerfile)
    assert any(re.match(r"RUN (--mount=\S+ )*\./docker/install\.sh ", line) for line in lines)
    for needed in ("setup.py", "audioshards", "docker/install.sh"):
        assert any(line.startswith(f"COPY {needed} ") for line in lines), f"{dockerfile.name} does not copy {needed}"
    assert "docker/install.sh --venv" in (ROOT / "Makefile").read_text()


def test_install_script_is_valid_bash_and_rejects_unknown_options():
    script = ROOT / "docker/install.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    result = subprocess.run([str(script), "--frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown option --frobnicate" in result.stderr


def test_install_script_deps_only_installs_the_requirements_of_setup_py(tmp_path):
    """The images' dependency layer: setup.py's core and extra requirements, and not MyGO itself
    (pip is a stand-in here that records what it is asked to install)."""
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "ffmpeg"], capture_output=True, text=True)
    if "install ok installed" not in status.stdout:
        pytest.skip("Debian's ffmpeg is not installed (install.sh would install it)")
    log = tmp_path / "pip.log"
    python = tmp_path / "python"
    python.write_text(f"""#!/usr/bin/env bash
if [ "$1 $2" = "-m pip" ]; then
  echo "pip $*" >> "{log}"
  for argument; do [ ! -f "$argument" ] || cat "$argument" >> "{log}"; done
  exit 0
fi
exec "{sys.executable}" "$@"
""")
    python.chmod(0o755)
    result = subprocess.run([str(ROOT / "docker/install.sh"), "--extras", "pipeline", "--deps-only"],
                            env={"PATH": "/usr/bin:/bin", "PYTHON": str(python)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    pins = setup_pins()
    lines = log.read_text().splitlines()
    assert pins["TENSORFLOW"] in lines and pins["APACHE_BEAM"] in lines  # core and pipeline extra
    assert not any(line.startswith("scikit-learn") for line in lines)  # the train extra's
    assert not any(line.startswith("pip ") and line.rstrip().endswith((str(ROOT), "]")) for line in lines)


@pytest.mark.parametrize("dockerfile, role, other", ROLES)
def test_each_image_installs_its_role_only(dockerfile, role, other):
    lines = instructions(ROOT / "docker" / dockerfile)
    runs = [line for line in lines if line.startswith("RUN ") and "./docker/install.sh" in line]
    assert [re.search(r"\./docker/install\.sh (.*?)( &&|$)", line).group(1) for line in runs] == [
        f"--image --extras {role} --deps-only", f"--image --extras {role} --no-deps"]
    assert not any(line.startswith(f"COPY {other} ") for line in lines)


@pytest.mark.parametrize("dockerfile, role, package", [(d, r, "training" if r == "train" else r) for d, r, _ in ROLES])
def test_dependencies_are_a_layer_before_the_source(dockerfile, role, package):
    """A change of MyGO's code must not reinstall TensorFlow or Beam: only setup.py and the script
    are copied before the dependencies' RUN; the packages come after it."""
    lines = instructions(ROOT / "docker" / dockerfile)
    deps = next(i for i, line in enumerate(lines) if "--deps-only" in line)
    copied_before = [line.split()[1] for line in lines[:deps] if line.startswith("COPY ")]
    assert copied_before == ["setup.py", "docker/install.sh"]
    source = [i for i, line in enumerate(lines) if line.startswith(("COPY audioshards ", f"COPY {package} "))]
    assert len(source) == 2 and min(source) > deps


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_pip_secrets_are_mounted_never_copied(dockerfile):
    """The CA bundle (TLS-inspecting proxies) and a pip.conf reach pip as build secrets only."""
    lines = instructions(dockerfile)
    for line in lines:
        if line.startswith("RUN ") and "./docker/install.sh" in line:
            assert "--mount=type=secret,id=ca " in line and "--mount=type=secret,id=pipconf " in line
    assert not any(re.search(r"\b(ca-certificates\.crt|pip\.conf|PIP_CERT|PIP_INDEX_URL)\b", line)
                   for line in lines if line.startswith(("COPY", "ADD", "ENV", "ARG")))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_run_as_a_user_of_their_own(dockerfile):
    lines = instructions(dockerfile)
    users = [line for line in lines if line.startswith("USER ")]
    assert users[-1] == "USER 10001:10001"
    assert any("useradd --create-home --uid 10001 --user-group mygo" in line for line in lines)


def test_training_image_runs_the_trainer():
    assert 'ENTRYPOINT ["python", "-m", "training"]' in instructions(ROOT / "docker/Dockerfile.train")


def test_pipeline_image_is_a_beam_custom_container():
    """Beam's convention: dependencies preinstalled and the SDK harness boot as entry point."""
    lines = instructions(ROOT / "docker/Dockerfile.pipeline")
    assert lines[-1] == 'ENTRYPOINT ["/opt/apache/beam/boot"]'


def test_docker_check_is_a_target_of_its_own():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^docker-check:\n\tdocker/check\.sh$", makefile, re.MULTILINE)
    test_target = re.search(r"^test:(.*)$", makefile, re.MULTILINE).group(1)
    assert "docker" not in test_target
    for script in ("check.sh", "local-base.sh"):
        assert subprocess.run(["bash", "-n", str(ROOT / "docker" / script)]).returncode == 0


def test_build_context_leaves_out_the_heavy_folders():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".git", "shards", "runs", "corpora"} <= ignored
