#!/usr/bin/env bash
# Creates or refreshes .venv with everything hseg_mm needs; called by `make`.
# Order matters (see docs/environment.md): torch first, then everything else under a
# constraint that holds torch at the installed version, so nothing can pull a
# second (CUDA) torch or a torchvision that breaks `import mmseg.models`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --quiet --disable-pip-version-check)

# Keep a torch that is already there (for example a CUDA build); else the CPU pin.
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "[setup] installing $TORCH_PIN"
  # unquoted on purpose: TORCH_PIN may carry pip options (an --index-url)
  # shellcheck disable=SC2086
  "${PIP[@]}" $TORCH_PIN
fi
TORCH_VERSION=$("$PY" -c 'import torch; print(torch.__version__)')
CONSTRAINTS="$VENV/constraints.txt"
# The public version (2.14.1, not 2.14.1+cu130): it still matches the installed build, and
# pip can reconcile it with a cap such as torch<=2.14.1 (a local label sorts above it).
echo "torch==${TORCH_VERSION%%+*}" > "$CONSTRAINTS"
if "$PY" -m pip show torchvision >/dev/null 2>&1; then  # keep the one installed beside it
  "$PY" -c 'import importlib.metadata as m; print("torchvision==" + m.version("torchvision").split("+")[0])' \
    >> "$CONSTRAINTS"
fi

# Full mmcv with compiled ops is kept where present. Otherwise MMCV=lite (the default)
# installs mmcv-lite, whose missing ops hseg_mm.compat stands in for, and MMCV=full
# installs full mmcv 2.1.0 built from its sdist against this torch (make test-full-mmcv).
MMCV=${MMCV:-lite}
if ! "$PY" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("mmcv._ext") is None)' 2>/dev/null; then
  case "$MMCV" in
    lite) "${PIP[@]}" -c "$CONSTRAINTS" mmcv-lite==2.1.0 ;;
    full)
      if "$PY" -m pip show mmcv-lite >/dev/null 2>&1; then  # both own the mmcv/ folder
        "$PY" -m pip uninstall --quiet --yes mmcv-lite
      fi
      # PyPI has only mmcv 2.1.0's sdist; its compiled ops are tied to the torch they were
      # built against, so one cached wheel per torch version and Python.
      PY_TAG=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
      WHEELS="${MMCV_WHEEL_DIR:-$HOME/.cache/hseg_mm/wheels}/torch-$TORCH_VERSION-$PY_TAG"
      WHEEL=$(ls "$WHEELS"/mmcv-2.1.0-*.whl 2>/dev/null | head -n 1 || true)
      if [ -z "$WHEEL" ]; then
        # setuptools<82: mmcv's setup.py imports pkg_resources (gone in 82); wheel: pip
        # wheel without build isolation needs it in the venv; ninja: compiles MAX_JOBS
        # files at a time (torch's extension builder is serial without it).
        "${PIP[@]}" -c "$CONSTRAINTS" "setuptools<82" wheel ninja
        echo "[setup] building mmcv 2.1.0 with compiled ops against torch $TORCH_VERSION" \
             "into $WHEELS (about 20 min on 2 cores)"
        mkdir -p "$WHEELS"
        # no build isolation: the build must see this torch, not a fresh one from PyPI
        MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "$PY" -m pip wheel --disable-pip-version-check \
          --no-deps --no-build-isolation -c "$CONSTRAINTS" -w "$WHEELS" mmcv==2.1.0
        WHEEL=$(ls "$WHEELS"/mmcv-2.1.0-*.whl | head -n 1)
      else
        echo "[setup] reusing $WHEEL"
      fi
      "${PIP[@]}" -c "$CONSTRAINTS" "$WHEEL"
      "$PY" -c 'import mmcv.ops' || { echo "[setup] error: $WHEEL does not import" >&2; exit 1; } ;;
    *) echo "[setup] error: MMCV=$MMCV; expected lite or full" >&2; exit 1 ;;
  esac
fi
EXTRAS=${EXTRAS:-tests,mlflow}  # tests,mlflow,timm for the GPU user's stack (make test-gpu-stack)
echo "[setup] installing hseg_mm[$EXTRAS] and its dependencies (torch $TORCH_VERSION kept)"
"${PIP[@]}" -c "$CONSTRAINTS" -e ".[$EXTRAS]"

# A torchvision that cannot load next to this torch breaks mmseg's imports.
if "$PY" -m pip show torchvision >/dev/null 2>&1 && ! "$PY" -c 'import torchvision' 2>/dev/null; then
  echo "[setup] error: torchvision is installed but does not import with torch $TORCH_VERSION;" \
       "remove it ($PY -m pip uninstall torchvision)" >&2
  exit 1
fi
"$PY" -c 'import hseg_mm, mmseg.models; print("[setup] ok: hseg_mm", hseg_mm.__version__)'
