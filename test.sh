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
echo "==> ruff format --check"
.venv/bin/ruff format --check .
echo "==> pytest"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
