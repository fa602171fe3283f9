# vlstudy — the commands the README names. Each one first creates or reuses .venv (scripts/setup.sh).
#   make study               the whole study on the embedded mini-Youku data (dvc repro), prints the report path;
#                            JOBS=2: two stages at a time, each with cores/2 torch threads (reproducible,
#                            but not JOBS=1's numbers: float results depend on the thread count)
#   make test                the test suite
#   make lab                 JupyterLab on the profile's notebooks (PROFILE=smoke: runs/smoke/notebooks)
#   make study PROFILE=smoke the same stages at tiny sizes, in runs/smoke/ (CI runs them with `make smoke`,
#                            two at a time: its stages are mostly kernel start-up, which runs beside another stage)
PROFILE ?= default
JOBS ?= 1
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export HF_HUB_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export PYTHONUNBUFFERED := 1

.PHONY: study test lab smoke setup setup-test

setup:
	@bash scripts/setup.sh

setup-test:
	@bash scripts/setup.sh --test

study: setup
	vlstudy study --profile $(PROFILE) --jobs $(JOBS)

smoke: setup
	vlstudy study --profile smoke --jobs 2

test: setup-test
	@python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5): treated as a failure" >&2; exit 1; fi; \
	exit $$rc

lab: setup
	vlstudy lab --profile $(PROFILE)
