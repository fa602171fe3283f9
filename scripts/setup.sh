#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv) with the pinned packages, the Jupyter kernel and
# the CJK font; with --test also the system packages the tests need (Chromium + ChromeDriver, a JRE).
# Idempotent: a stamp records what was installed, and a second run with unchanged pins takes a second.
#
# CUDA: VLSTUDY_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" make study
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

PY=${PYTHON:-python3}
TORCH_SPEC=${VLSTUDY_TORCH:-torch==2.13.0}
VENV=.venv

say() { printf '[setup] %s\n' "$*" >&2; }

if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  say "Python 3.11 is required (found: $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11"
  exit 1
fi

[ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }

stamp_want=$(cat pyproject.toml requirements.lock scripts/setup.sh | sha256sum | cut -d' ' -f1)-$TORCH_SPEC
stamp_file=$VENV/.vlstudy-installed
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp_want" ]; then
  say "installing pinned packages into $VENV (first run: about 2 minutes)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  # torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check $TORCH_SPEC
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c requirements.lock -e ".[dev]"
  # LPIPS calibration weights for vlstudy.panda.lpips; the lpips package itself imports torchvision (no CPU build
  # for this torch), so it is installed without dependencies and never imported by the kit.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -c requirements.lock lpips
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name vlstudy --display-name "Python (vlstudy)" >/dev/null
  echo "$stamp_want" > "$stamp_file"
fi

# The figures' Chinese font ships in the pinned `mplfonts` wheel; check that it is where matplotlib looks.
"$VENV/bin/python" -c 'from vlstudy.plotting import cjk_font_path; cjk_font_path()'

# DVC: a repository with analytics off (the committed .dvc/config says so too).
if [ ! -d .dvc ]; then "$VENV/bin/dvc" init -q; fi
"$VENV/bin/dvc" config core.analytics false

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing system packages: $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 || {
      apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
    }
  else
    say "please install with your package manager: $*"
    return 1
  fi
}

command -v java >/dev/null || apt_install default-jre-headless || true   # METEOR runs on the JVM
if [ "$want_test" = 1 ]; then
  { command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || apt_install chromium chromium-driver || true
fi
say "environment ready: $VENV"
