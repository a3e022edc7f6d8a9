# MyGO: every target installs what it needs first (virtualenv, pip packages, Debian's ffmpeg).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# make shards [SEGMENTS=csv] [SPLIT=train] [OUT=shards/audioset] [CACHE=shards/cache] [ARGS=...]
SEGMENTS ?= pipeline/data/balanced_train_segments.csv
SPLIT ?= train
OUT ?= shards/audioset
CACHE ?= shards/cache
ARGS ?=

.PHONY: install test shards clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.py
	@command -v ffmpeg >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq ffmpeg; }
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "MyGO needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: install
	$(PY) -m pytest -q tests

shards: install
	$(PY) -m pipeline --segments $(SEGMENTS) --split $(SPLIT) --out $(OUT) --cache $(CACHE) $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
