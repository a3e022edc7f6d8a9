"""The packages the offline corpora are built from, pinned, and a check of what is installed.

Everything a corpus contains comes from these Debian and PyPI packages (and the seed): no other
download. PyPI packages are pinned exactly; Debian packages are pinned by release (bookworm) and
the versions they were built and tested with are listed, because apt cannot install an old
version once the archive has moved on. Every build records the versions it actually used in its
``manifest.json``, so two corpora can be compared.

This file runs with the system Python (no third-party imports), so the Makefile can ask it what
to install before any virtualenv exists::

    python3 corpora/packages.py --missing-debian   # names to apt-get install, or nothing
    python3 corpora/packages.py --pip              # pip requirement lines
"""
from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys

#: Debian package → (version built and tested with, what it gives the corpora).
DEBIAN: dict[str, tuple[str, str]] = {
    "espeak-ng": ("1.51+dfsg-10+deb12u2", "speech synthesis in ~100 languages and ~90 voices"),
    "fluidsynth": ("2.3.1-2", "libfluidsynth3, the SoundFont synthesiser pyfluidsynth drives"),
    "fluid-soundfont-gm": ("3.1-5.3", "FluidR3 General MIDI SoundFont (music; instrument train fold)"),
    "timgm6mb-soundfont": ("1.3-5", "TimGM6mb General MIDI SoundFont (instrument test fold)"),
    "avldrums.lv2-soundfont": ("0.5.2-2", "two multi-sampled acoustic drum kits (real recordings)"),
    "sound-theme-freedesktop": ("0.8-2", "desktop event sounds: bells, phone, camera shutter"),
    "openttd-opensfx": ("1.0.3-2", "field recordings: vehicles, animals, wind, applause, tools"),
    "asterisk-core-sounds-en-wav": ("1.6.1-1", "recorded human speech (one speaker, 8 kHz)"),
    "asterisk-moh-opsound-wav": ("2.03-1.1", "recorded music (five tracks, 8 kHz)"),
    "ffmpeg": ("7:5.1.9-0+deb12u1", "decoding checks in the tests"),
}

#: PyPI distribution → exact version.
PYPI: dict[str, str] = {
    "pyfluidsynth": "1.4.0",    # renders General MIDI through libfluidsynth in-process
    "faker": "40.54.0",         # sentences, names and addresses in ~60 languages for espeak-ng
    "soundfile": "0.14.0",      # FLAC/WAV/Ogg reading and writing (bundles its libsndfile)
    "numpy": None,              # the project's own pins (setup.py) apply
    "scipy": None,
}

#: The command line tools that must be on PATH, and the package that provides each.
TOOLS = {"espeak-ng": "espeak-ng", "ffmpeg": "ffmpeg"}


def debian_versions(names=DEBIAN) -> dict[str, str | None]:
    """Installed version of each Debian package (None when not installed)."""
    versions: dict[str, str | None] = {name: None for name in names}
    if shutil.which("dpkg-query") is None:
        return versions
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}\t${Version}\t${db:Status-Status}\n", *names],
        capture_output=True, text=True, check=False)
    for line in result.stdout.splitlines():
        name, version, status = (line.split("\t") + ["", ""])[:3]
        if status == "installed" and name in versions:
            versions[name] = version
    return versions


def missing_debian() -> list[str]:
    return [name for name, version in debian_versions().items() if version is None]


def pypi_versions(names=PYPI) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def pip_requirements() -> list[str]:
    return [f"{name}=={version}" for name, version in PYPI.items() if version]


def check_installed() -> list[str]:
    """Raise RuntimeError naming exactly what to install when anything is missing; return
    warnings for versions that differ from the tested ones (the build goes on, and the
    manifest records what was used)."""
    problems = []
    missing = missing_debian()
    if missing:
        problems.append("Debian packages missing: run\n    sudo apt-get install --no-install-recommends "
                        + " ".join(missing) + "\n  (or `make corpora`, which does it)")
    absent = [f"{name}=={version}" for name, version in PYPI.items()
              if version and pypi_versions([name])[name] is None]
    if absent:
        problems.append("Python packages missing: run\n    .venv/bin/pip install " + " ".join(absent))
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None and package not in missing:
            problems.append(f"{tool} is not on PATH (Debian package {package})")
    if problems:
        raise RuntimeError("cannot build the corpora:\n- " + "\n- ".join(problems))
    warnings = []
    for name, version in debian_versions().items():
        if version != DEBIAN[name][0]:
            warnings.append(f"Debian {name} is {version}, corpora were tested with {DEBIAN[name][0]}")
    for name, version in pypi_versions().items():
        if PYPI[name] and version != PYPI[name]:
            warnings.append(f"PyPI {name} is {version}, pinned {PYPI[name]}")
    return warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--missing-debian", action="store_true",
                       help="print the Debian packages still to install, space-separated")
    group.add_argument("--debian", action="store_true", help="print all the Debian packages")
    group.add_argument("--pip", action="store_true", help="print the pip requirement lines")
    args = parser.parse_args(argv)
    if args.missing_debian:
        print(" ".join(missing_debian()))
    elif args.debian:
        print(" ".join(DEBIAN))
    else:
        print("\n".join(pip_requirements()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
