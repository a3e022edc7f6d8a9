#!/usr/bin/env bash
# Installs MyGO and the Debian packages it needs. One script for every place MyGO is installed:
# the Makefile (a virtualenv for development and CI) and both Docker images (the system Python),
# so CI exercises the same steps the images run.
#
#   docker/install.sh [--venv DIR] [--extras test] [--editable] [--debian "pkg ..."]
#
# --venv DIR      create (if missing) and install into this virtualenv; default: the Python on PATH
# --extras LIST   setup.py extras: pipeline, train, test (comma-separated)
# --editable      pip install -e (development checkouts)
# --debian PKGS   more Debian packages to install when missing (ffmpeg is always needed)
set -euo pipefail

venv="" extras="" editable="" debian=""
while (($#)); do
  case "$1" in
    --venv) venv="$2"; shift 2 ;;
    --extras) extras="$2"; shift 2 ;;
    --editable) editable="-e"; shift ;;
    --debian) debian="$2"; shift 2 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"

missing=()
for package in ffmpeg $debian; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "install.sh: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "MyGO needs Python 3.11 or newer")'
if [ -n "$venv" ]; then
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  python="$venv/bin/python"
fi
"$python" -m pip install -q --upgrade pip
target="$root"
[ -z "$extras" ] || target="$root[$extras]"
"$python" -m pip install -q $editable "$target"
