# ganref: `make` runs every chapter at the cpu profile and builds the site; `make test` runs all tests.
# Both create the environment (.venv) first if it is missing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PROFILE ?= cpu
JOBS   ?= 2
SEED   ?= 0
DEVICE ?= auto

.PHONY: all run book lab test test-fast chromium benchmarks clean

all: book

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

run: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(PY) -m ganref.pipeline.cli run --profile $(PROFILE) --device $(DEVICE) --seed $(SEED) --jobs $(JOBS)
	$(PY) -m ganref.pipeline.cli results --profile $(PROFILE)

book: run
	$(PY) -m ganref.pipeline.cli book --profile $(PROFILE)

# JupyterLab on the chapters (notebooks/): the settings in .jupyter/ (shipped with the repository, found
# through $JUPYTER_CONFIG_PATH and $JUPYTER_PATH, never the user's home) make a double-clicked .md chapter open
# as a notebook; kernels read the profile from $GANREF_PROFILE (make lab PROFILE=smoke).
lab: $(VENV)/.installed
	@case "$(PROFILE)" in smoke|cpu|full) ;; *) echo "PROFILE must be smoke, cpu or full, got '$(PROFILE)'"; exit 2;; esac
	GANREF_PROFILE=$(PROFILE) \
	JUPYTER_CONFIG_PATH="$(CURDIR)/.jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	JUPYTER_PATH="$(CURDIR)/.jupyter$${JUPYTER_PATH:+:$$JUPYTER_PATH}" \
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)/notebooks" \
	  $$([ "$$(id -u)" = 0 ] && echo --ServerApp.allow_root=True)

# The browser test needs Debian's chromium; as root this installs it, otherwise it says how.
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "the site test needs /usr/bin/chromium: run 'sudo apt-get install -y chromium'"; exit 1; fi; }

test: $(VENV)/.installed chromium
	OMP_NUM_THREADS=1 $(PY) -m pytest

test-fast: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(PY) -m pytest -m "not slow"

benchmarks: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_fit.py

clean:
	rm -rf runs book/_build book/chapters book/results.md build
