#!/usr/bin/env bash
# Installs MyGO and the Debian packages it needs. One script for every place MyGO is installed:
# the Makefile (a virtualenv for development and CI) and both Docker images (the system Python),
# so CI exercises the same steps the images run.
#
#   docker/install.sh [--venv DIR] [--extras test] [--editable] [--debian "pkg ..."]
#                     [--image] [--deps-only | --no-deps]
#
# --venv DIR      create (if missing) and install into this virtualenv; default: the Python on PATH
# --extras LIST   setup.py extras: pipeline, train, test (comma-separated)
# --editable      pip install -e (development checkouts)
# --debian PKGS   more Debian packages to install when missing (ffmpeg is always needed)
# --image         an image build: pip's --no-cache-dir, apt's lists removed afterwards, and when the
#                 Python on PATH cannot take the packages (none, or Debian's externally managed
#                 one, as on a plain Debian base) Debian's python3 and python3-venv are installed
#                 and /opt/venv is made the virtualenv (the Dockerfiles put /opt/venv/bin on PATH)
# --deps-only     only the requirements setup.py names (core and extras), not MyGO itself: the
#                 images' dependency layer, built before the source is copied in
# --no-deps       MyGO alone (its dependencies are already installed)
#
# Image builds read two optional build secrets when mounted (nothing of them lands in a layer):
# /run/secrets/ca, a CA bundle for pip (a TLS-inspecting proxy), and /run/secrets/pipconf, a
# pip.conf (e.g. an index URL with credentials).
set -euo pipefail

venv="" extras="" editable="" debian="" image="" deps="all"
while (($#)); do
  case "$1" in
    --venv) venv="$2"; shift 2 ;;
    --extras) extras="$2"; shift 2 ;;
    --editable) editable="-e"; shift ;;
    --debian) debian="$2"; shift 2 ;;
    --image) image=1; shift ;;
    --deps-only) deps="only"; shift ;;
    --no-deps) deps="none"; shift ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"

# True when $python can take pip packages directly: it exists and is not externally managed (PEP 668).
python_takes_packages() {
  command -v "$python" >/dev/null 2>&1 &&
    "$python" -c 'import os, sys, sysconfig
sys.exit(os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'
}

debian_packages="ffmpeg $debian"
if [ -n "$image" ] && [ -z "$venv" ] && ! python_takes_packages; then
  venv=/opt/venv
  debian_packages+=" python3 python3-venv"
fi

missing=()
for package in $debian_packages; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "install.sh: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$image" ] || rm -rf /var/lib/apt/lists/*
fi

"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "MyGO needs Python 3.11 or newer")'
if [ -n "$image" ]; then
  export PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
  [ ! -s /run/secrets/ca ] || export PIP_CERT=/run/secrets/ca
  [ ! -s /run/secrets/pipconf ] || export PIP_CONFIG_FILE=/run/secrets/pipconf
fi
new_venv=""
if [ -n "$venv" ]; then
  # In an image, the base's own packages (TensorFlow in TensorFlow's image) stay visible.
  [ -x "$venv/bin/python" ] || { "$python" -m venv ${image:+--system-site-packages} "$venv"; new_venv=1; }
  python="$venv/bin/python"
fi
# An image's base keeps its own pip; a new virtualenv's (Debian's is old) is brought up to date.
[ -n "$image" ] && [ -z "$new_venv" ] || "$python" -m pip install -q --upgrade pip

if [ "$deps" = only ]; then
  # setup.py's requirements, read without setuptools (a stand-in records the setup() call).
  requirements="$(mktemp)"
  trap 'rm -f "$requirements"' EXIT
  "$python" - "$root/setup.py" "$extras" > "$requirements" <<'PY'
import runpy, sys, types
arguments = {}
setuptools = types.ModuleType("setuptools")
setuptools.setup = lambda **kwargs: arguments.update(kwargs)
setuptools.find_packages = lambda *args, **kwargs: []
sys.modules["setuptools"] = setuptools
runpy.run_path(sys.argv[1])
requirements = list(arguments.get("install_requires", []))
for extra in filter(None, sys.argv[2].split(",")):
    requirements += arguments["extras_require"][extra]
print("\n".join(dict.fromkeys(requirements)))
PY
  "$python" -m pip install -q -r "$requirements"
  exit 0
fi
target="$root"
[ -z "$extras" ] || target="$root[$extras]"
nodeps=""
[ "$deps" = all ] || nodeps="--no-deps"
"$python" -m pip install -q $editable $nodeps "$target"

# numba compiles on first use and caches the machine code beside the module (cache=True): compile
# here, once per installation, rather than in every Beam worker or test process that starts before
# the cache is written. Ours take ~0.6 s; librosa's helpers (the test extra's reference), which
# compile when their modules are imported, ~11 s.
"$python" - <<'PY'
import importlib
import importlib.util

import numpy as np

from audioshards.spectrogram import log_mel

log_mel(np.zeros((4096, 2), np.float32))
if importlib.util.find_spec("librosa"):
    for module in ("librosa.util.utils", "librosa.core.audio", "librosa.core.pitch", "librosa.feature.spectral"):
        importlib.import_module(module)
PY
