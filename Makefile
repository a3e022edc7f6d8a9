# MyGO: every target installs what it needs first (virtualenv, pip packages, Debian's ffmpeg).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# Debian packages of the offline corpora (corpora/packages.py), which the tests and the
# demo build from; docker/install.sh installs the ones missing.
TEST_DEBIAN_PACKAGES ?= $(shell $(PYTHON) corpora/packages.py --debian)

# make shards [SEGMENTS=csv] [SPLIT=train] [OUT=shards/audioset] [CACHE=shards/cache] [ARGS=...]
SEGMENTS ?= pipeline/data/balanced_train_segments.csv
SPLIT ?= train
OUT ?= shards/audioset
CACHE ?= shards/cache
ARGS ?=

.PHONY: install test shards probe bench docker demo clean

install: $(VENV)/.installed

# The same script installs the Docker images, so every CI run exercises their install steps.
# Every role (pipeline, train) and the test tools: the tests exercise both halves.
$(VENV)/.installed: setup.py docker/install.sh corpora/packages.py
	PYTHON=$(PYTHON) docker/install.sh --venv $(VENV) --extras pipeline,train,test --editable --debian "$(TEST_DEBIAN_PACKAGES)"
	touch $@

# TEST_WORKERS pytest workers (pytest-xdist): one more than the cores, at most 8. Much of the
# suite's time is single-threaded start-ups (TensorFlow, Beam workers, ffmpeg) and waiting (servers,
# time-outs), which overlap: on 2 cores, 3 workers took 204 s where 2 took 212 s. --dist loadfile
# keeps each test file in one worker, so a module's fixtures (a trained run) are made once;
# --no-loadscope-reorder keeps the files in collection order, longest first (tests/conftest.py),
# where pytest-xdist would start the files with the most tests first and end on a long one alone.
# --durations: the 20 slowest tests at the end of every run, so the suite's duration
# (docs/development.md) can be watched from CI's log.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n + 1 < 8 ? n + 1 : 8 )))
test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=20 tests

shards: install
	$(PY) -m pipeline --segments $(SEGMENTS) --split $(SPLIT) --out $(OUT) --cache $(CACHE) $(ARGS)

# make train SHARDS=shards/audioset OUT=runs/NAME [MODEL=tiny|small|base] [BATCH=256] [STEPS=N | EPOCHS=N]
#            [LR=peak, default per model] [LAMBDA=0.05] [PRECISION=auto] [CPU_DEVICES=K] [TRAIN_ARGS="--any-other-flag ..."]
# Resume (settings from runs/NAME/config.json): make train OUT=runs/NAME
SHARDS ?=
MODEL ?=
BATCH ?=
STEPS ?=
EPOCHS ?=
LR ?=
LAMBDA ?=
PRECISION ?=
CPU_DEVICES ?=
TRAIN_ARGS ?=
.PHONY: train
train: install
	@case "$(origin OUT)" in "command line"|environment) ;; *) \
	  echo "usage: make train SHARDS=SHARD_DIR OUT=runs/NAME [MODEL=tiny|small|base BATCH=N STEPS=N|EPOCHS=N ...]"; exit 2;; esac
	$(PY) -m training train --out $(OUT) $(if $(SHARDS),--shards $(SHARDS)) $(if $(MODEL),--model $(MODEL)) \
	  $(if $(BATCH),--batch $(BATCH)) $(if $(STEPS),--steps $(STEPS)) $(if $(EPOCHS),--epochs $(EPOCHS)) \
	  $(if $(LR),--lr $(LR)) $(if $(LAMBDA),--lambda $(LAMBDA)) $(if $(PRECISION),--precision $(PRECISION)) \
	  $(if $(CPU_DEVICES),--cpu-devices $(CPU_DEVICES)) $(TRAIN_ARGS)

# make probe RUN=runs/NAME DATA=shards/dir-or-labelled-audio [PROBE_ARGS=--baselines]
PROBE_ARGS ?= --baselines
probe: install
	@test -n "$(RUN)" -a -n "$(DATA)" || { echo "usage: make probe RUN=runs/NAME DATA=SHARD_DIR|AUDIO_DIR|CSV"; exit 2; }
	if [ -f "$(DATA)/manifest.json" ]; then \
	  $(PY) -m training probe --run $(RUN) --shards $(DATA) --out $(RUN)/probe.json $(PROBE_ARGS); \
	else \
	  $(PY) -m training probe --run $(RUN) --audio $(DATA) --out $(RUN)/probe.json $(PROBE_ARGS); \
	fi

# make pictures RUN=runs/NAME [DATA=shards/dir-or-labelled-audio] [OUT=docs/pictures] [VIZ_ARGS=--max-clips 500]:
# viz's PNG files (training curves; with DATA the PCA and attention pictures; probe.png from RUN/probe.json when
# there) into RUN/pictures, or into OUT when given; also into the run's TensorBoard (docs/evaluation.md).
VIZ_ARGS ?=
.PHONY: pictures
pictures: install
	@test -n "$(RUN)" || { echo "usage: make pictures RUN=runs/NAME [DATA=SHARD_DIR|AUDIO_DIR|CSV] [OUT=docs/pictures]"; exit 2; }
	$(PY) -m training viz --run $(RUN) $(if $(DATA),$(if $(wildcard $(DATA)/manifest.json),--shards,--audio) $(DATA)) \
	  --out $(if $(filter command line environment,$(origin OUT)),$(OUT),$(RUN)/pictures) $(VIZ_ARGS)

# make bench: every speed benchmark, each printing one JSON object (docs/performance.md: its duration).
# flops.py's count is part of training_step's JSON; quality.py pretrains for a CPU budget and
# probes (about 30 minutes on 2 cores for tiny): make quality. runners.py starts local Dask
# clusters and takes minutes: python -m benchmarks.runners (docs/dask.md).
SPEED_BENCHMARKS := $(filter-out flops quality runners,$(basename $(notdir $(wildcard benchmarks/[a-z]*.py))))
bench: install
	@for name in $(SPEED_BENCHMARKS); do \
	  start=$$(date +%s); $(PY) -m benchmarks.$$name || exit 1; \
	  echo "make bench: benchmarks.$$name took $$(( $$(date +%s) - start )) s" >&2; \
	done

# make quality [QUALITY_ARGS="--minutes 20 --models tiny small"]: does pretraining beat the baselines?
# (docs/quality.md: 20 minutes of tiny by default, probed at a quarter, half and all of the budget)
QUALITY_ARGS ?=
.PHONY: quality
quality: install
	$(PY) -m benchmarks.quality $(QUALITY_ARGS)

# Needs a Docker engine (none runs on the project's CI machines; tests lint the Dockerfiles).
docker:
	docker build -f docker/Dockerfile.pipeline -t mygo-pipeline .
	docker build -f docker/Dockerfile.train -t mygo-train .

# make docker-check (root): both images built and run here with podman, no registry needed: a local
# Debian base (docker/local-base.sh), a smoke test in each image, their sizes (docs/docker.md).
# Not part of make test (which lints the Dockerfiles). DOCKER_CA/PIP_CONF: pip's build secrets.
.PHONY: docker-check
docker-check:
	docker/check.sh

demo: install
	$(PY) -m demo

clean:
	rm -rf $(VENV) .pytest_cache

# make corpora [CORPUS_SIZE=full|small] [CORPORA_DIR=corpora/built] [CORPUS_SEED=0]
# Offline corpora (corpora/): pretraining set in AudioSet format, keywords, instruments;
# installs the Debian packages and pip pins of corpora/packages.py when missing.
CORPUS_SIZE ?= full
CORPORA_DIR ?= corpora/built
CORPUS_SEED ?= 0
.PHONY: corpora
corpora: install
	$(PY) -m corpora.build --out $(CORPORA_DIR) --size $(CORPUS_SIZE) --seed $(CORPUS_SEED)
