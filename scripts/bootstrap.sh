#!/usr/bin/env bash
# Create .venv at the repo root and install triage with its test extras.
# Idempotent: a second run with nothing changed takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.triage-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # Measured: 6 minutes on a 2-core machine with a warm pip cache, up to 10 with other
  # builds running beside it; downloading ~1 GB of wheels first adds to that.
  echo "==> installing triage and its dependencies into .venv (first time: 5-10 minutes on 2 cores)"
  started=$(date +%s)
  .venv/bin/python -m pip install -q --upgrade pip
  # torch is pinned in pyproject.toml to the CPU wheel; it must be resolved in the
  # same install as sentence-transformers or a multi-GB CUDA build is pulled.
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
  echo "==> installed in $(( ($(date +%s) - started) / 60 )) min $(( ($(date +%s) - started) % 60 )) s"
fi

# axe-core (accessibility checks of the browser tests), from npm into a git-ignored folder.
AXE_VERSION=4.11.0
if command -v npm >/dev/null 2>&1 && \
   [ "$(cat .npm-tools/.axe-version 2>/dev/null)" != "$AXE_VERSION" ]; then
  echo "==> installing axe-core $AXE_VERSION into .npm-tools/ (browser accessibility tests)"
  npm install --prefix .npm-tools --no-save --no-audit --no-fund "axe-core@$AXE_VERSION" >/dev/null
  echo "$AXE_VERSION" > .npm-tools/.axe-version
fi
