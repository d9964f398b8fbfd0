# `make demo` and `make test` set up .venv themselves; with it up to date the
# set-up step is skipped (the stamp is newer than everything it depends on).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hseg_mm-installed
THREADS ?= 2

.PHONY: setup test test-slurm test-gpu-stack test-gpu-stack-timm setup-full-mmcv test-full-mmcv \
	demo clean-venv

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

# The GPU user's stack in its own venv: CUDA torch 2.14.1, torchvision 0.29.1 and timm, as
# `pip install torch==2.14.1 torchvision==0.29.1 timm` gives it (5.5 GB); the CUDA build runs
# on a CPU. The whole suite there, with a skipped timm test counted as a failure; the -timm
# target runs the timm tests only (what CI runs).
GPU_VENV ?= .venv-gpu
GPU_STAMP := $(GPU_VENV)/.hseg_mm-installed

$(GPU_STAMP): setup.py tools/setup_env.sh
	VENV=$(GPU_VENV) TORCH_PIN="torch==2.14.1 torchvision==0.29.1" EXTRAS=tests,mlflow,timm \
		bash tools/setup_env.sh
	touch $@

test-gpu-stack: $(GPU_STAMP)
	HSEG_REQUIRE_TIMM=1 OMP_NUM_THREADS=$(THREADS) $(GPU_VENV)/bin/python -m pytest -q tests

test-gpu-stack-timm: $(GPU_STAMP)
	HSEG_REQUIRE_TIMM=1 OMP_NUM_THREADS=$(THREADS) $(GPU_VENV)/bin/python -m pytest -q tests -k timm

# Full mmcv 2.1.0 (compiled ops) in place of mmcv-lite, in its own venv with the CPU torch.
# PyPI has only mmcv's sdist: the first run builds a wheel from it (about 20 min on 2 cores)
# into MMCV_WHEEL_DIR, one folder per torch version and Python; later runs reuse it. The
# whole suite there; hseg_mm.compat's mmcv.ops stand-in must step aside (tests/test_environment.py).
MMCV_VENV ?= .venv-mmcv
MMCV_STAMP := $(MMCV_VENV)/.hseg_mm-installed
MMCV_WHEEL_DIR ?= $(HOME)/.cache/hseg_mm/wheels

$(MMCV_STAMP): setup.py tools/setup_env.sh
	VENV=$(MMCV_VENV) MMCV=full MMCV_WHEEL_DIR=$(MMCV_WHEEL_DIR) MAX_JOBS=$(THREADS) \
		bash tools/setup_env.sh
	touch $@

setup-full-mmcv: $(MMCV_STAMP)

test-full-mmcv: $(MMCV_STAMP)
	OMP_NUM_THREADS=$(THREADS) $(MMCV_VENV)/bin/python -m pytest -q tests

demo: $(STAMP)
	OMP_NUM_THREADS=$(THREADS) $(PY) tools/demo.py

clean-venv:
	rm -rf $(VENV)
