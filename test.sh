#!/usr/bin/env bash
# The static checks, then the whole test suite (unit, real-model, PostgreSQL, HTTP, browser).
# Extra args go to pytest, e.g. the fast loop: ./test.sh -m "not slow and not browser and not postgres"
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
echo "==> ruff check"
.venv/bin/ruff check .
echo "==> mypy (triage/)"
.venv/bin/mypy
# Not fatal yet: the code base gets its one-time `ruff format .` after the last landing of this
# round; then drop the `|| echo ...` so formatting drift fails like lint does.
.venv/bin/ruff format --check . >/dev/null 2>&1 \
  || echo "note: 'ruff format --check .' would reformat files (not fatal yet, see docs/DESIGN.md)"
echo "==> pytest"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
