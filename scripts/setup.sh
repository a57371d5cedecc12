#!/usr/bin/env bash
# Install everything muq-booster needs on a fresh Debian/Ubuntu machine:
#   Debian packages: ffmpeg (museval imports musdb/stempeg, which needs ffmpeg + ffprobe),
#                    fluidsynth + fluid-soundfont-gm (realistic rendering of the synthetic data set);
#   Python: the package in editable mode with its test extras, every pin of constraints.txt applied.
# With VENV set (the Makefile's default: .venv), the virtual environment is created first and PYTHON is its python.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${VENV:-}" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating the virtual environment $VENV"
    "${BASE_PYTHON:-python3}" -m venv "$VENV"
  fi
  PY="$VENV/bin/python"
else
  PY="${PYTHON:-python3}"
fi

need_apt=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v fluidsynth >/dev/null 2>&1 || need_apt+=(fluidsynth)
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need_apt+=(fluid-soundfont-gm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" = none ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: please install ${need_apt[*]} with your system package manager" >&2
  else
    echo "setup: installing Debian packages: ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi
fi

echo "setup: installing muq-booster and its dependencies (pip)"
"$PY" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
if ! "$PY" -c "import torch, torchaudio" 2>/tmp/muq-booster-setup-import.log; then
  echo "setup: torch and torchaudio are installed but do not load together ($(tail -n 1 /tmp/muq-booster-setup-import.log))." >&2
  echo "setup: install a tested pair: pip install -c constraints.txt torch torchaudio (see constraints.txt)" >&2
  exit 1
fi
# tests/msst compare converted MSST models with the module of MSST's layout: BS-RoFormer 0.4.1 (a pure-Python
# wheel, imported by the tests from build/reference/ under another name; the installed bs-roformer stays)
if [ ! -f build/reference/BS_RoFormer-0.4.1-py3-none-any.whl ]; then
  echo "setup: downloading BS-RoFormer 0.4.1 (reference for tests/msst) into build/reference/"
  "$PY" -m pip download -q --disable-pip-version-check --no-deps BS-RoFormer==0.4.1 -d build/reference
fi
"$PY" -c "import booster, torch, torchaudio; print(f'setup: muq-booster {booster.__version__}, torch {torch.__version__}, torchaudio {torchaudio.__version__}')"
