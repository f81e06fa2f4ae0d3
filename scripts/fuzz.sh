#!/usr/bin/env bash
# Rerun the project's fuzzers with another seed, each bounded in time:
#   scripts/fuzz.sh                 # a random seed, printed first
#   scripts/fuzz.sh 1234            # that seed
#   FUZZ_EXAMPLES=400 FUZZ_MINUTES=20 scripts/fuzz.sh 1234
#   FUZZ_STORE=postgresql scripts/fuzz.sh   # the API on PostgreSQL (TRIAGE_TEST_POSTGRES_URL)
# What runs: hypothesis on the parsers (export readers: any CSV shape read back as written,
# any bytes, any JSON Lines; RFC 2047 encoded-words: good words kept beside broken ones; mail intake on both stores: any broken message accounted for),
# then schemathesis against the served OpenAPI spec with three roles. A failure prints the
# reproducer (hypothesis' example, schemathesis' curl line): add it to a test as it is.
set -u
cd "$(dirname "$0")/.."
seed="${1:-$RANDOM$RANDOM}"
examples="${FUZZ_EXAMPLES:-100}"
minutes="${FUZZ_MINUTES:-10}"
echo "fuzz seed $seed, $examples examples per property, at most $minutes min per runner"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
status=0
TRIAGE_FUZZ_EXAMPLES="$examples" timeout "${minutes}m" nice .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/test_export_wild.py tests/test_fuzz_inputs.py tests/test_mail_words.py -k "any_" --hypothesis-seed="$seed" || status=1
TRIAGE_SCHEMATHESIS_SEED="$seed" TRIAGE_SCHEMATHESIS_EXAMPLES="$(( examples / 4 > 5 ? examples / 4 : 5 ))" \
    TRIAGE_SCHEMATHESIS_STORE="${FUZZ_STORE:-sqlite}" \
    timeout "${minutes}m" nice .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_schemathesis.py || status=1
echo "fuzz seed $seed: $([ $status = 0 ] && echo passed || echo 'FAILED (rerun with this seed to reproduce)')"
exit $status
