# make demo: set up .venv and run the main job (ends serving the dashboard on 127.0.0.1:8866).  make test: set up .venv and run the whole test suite.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
BIN   := $(VENV)/bin
# torch with torchvision: this pair is on the build machines' disk; override TORCH to use another build.
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | md5sum | cut -c1-8)
# real datasets (NEU-DET, magnetic tile) are looked for here when it exists; see defect_nb.core.find_dataset
ifneq ($(wildcard ../shared/data),)
export DEFECT_NB_DATASETS ?= $(abspath ../shared/data)
endif
# the NEU-DET and magnetic-tile tutorials (1, 3, 6) need those datasets: without them (and outside CI) nbdev-test skips them
ifeq ($(DEFECT_NB_DATASETS)$(CI),)
NBTEST_SKIP := --skip-file-re '(01_neu_classification|03_magnetic_tile_segmentation|06_only_good_parts)'
endif

.PHONY: setup demo test nbtest pytest export clean-nbs

setup: $(STAMP)

$(STAMP):
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev,serve,elpv]"
	@rm -f $(VENV)/.installed-*; touch $@

demo: setup
	$(BIN)/defect-nb demo --out demo
	$(BIN)/defect-nb dashboard --runs demo/runs --bundles demo/bundles

test: setup nbtest pytest

nbtest: setup
	$(BIN)/nbdev-test $(NBTEST_SKIP)

pytest: setup
	$(BIN)/pytest -q

export: setup
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean
