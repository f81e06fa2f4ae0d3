#!/usr/bin/env bash
# One command from a fresh clone to a running service:
#   sets up .venv, trains the demo bundle if there is none (and shows its report),
#   then serves the API and pages on http://127.0.0.1:8000 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/triage quickstart "$@"
