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

# Full mmcv with compiled ops is kept where present; otherwise mmcv-lite, whose
# missing ops hseg_mm.compat stands in for.
if ! "$PY" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("mmcv._ext") is None)' 2>/dev/null; then
  "${PIP[@]}" -c "$CONSTRAINTS" mmcv-lite==2.1.0
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
