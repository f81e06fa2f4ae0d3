#!/usr/bin/env bash
# The whole test suite (unit, real-model, PostgreSQL, HTTP, browser). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
