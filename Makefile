# `make demo` and `make test` set up .venv themselves; with it up to date the
# set-up step is skipped (the stamp is newer than everything it depends on).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hseg_mm-installed
THREADS ?= 2

.PHONY: setup test test-slurm demo clean-venv

setup: $(STAMP)

$(STAMP): setup.py tools/setup_env.sh
	VENV=$(VENV) bash tools/setup_env.sh
	touch $@

test: $(STAMP)
	OMP_NUM_THREADS=$(THREADS) $(PY) -m pytest -q tests

# The real-Slurm test alone, allowed to `apt-get install slurm-wlm munge` (root) when
# they are missing; `make test` runs it only where Slurm is already installed.
test-slurm: $(STAMP)
	HSEG_SLURM_APT=1 OMP_NUM_THREADS=$(THREADS) $(PY) -m pytest -q tests/tools/test_slurm.py

demo: $(STAMP)
	OMP_NUM_THREADS=$(THREADS) $(PY) tools/demo.py

clean-venv:
	rm -rf $(VENV)
