#!/usr/bin/env bash
# Bring your own data: from a JSONL of prompt/response pairs to a served, queried adapter with the llmft CLI alone.
#
#   jobs/byod/bring-your-own-data.sh DATA_DIR
#
# DATA_DIR holds train.jsonl ({"prompt", "response"} per line) and eval.jsonl ({"prompt", "reference"}).
# No Ray cluster is needed beforehand: commands attach to RAY_ADDRESS when set, else start a local Ray
# (`serve up` starts a local head with token auth and `serve down` stops it). State goes to $LLMFT_HOME.
# The same script is the newcomer test (tests/e2e/test_newcomer.py).
set -euo pipefail
DATA_DIR=$(cd "${1:?usage: $0 DATA_DIR (with train.jsonl and eval.jsonl)}" && pwd)
SPECS=$(cd "$(dirname "$0")" && pwd)
PORT=${SERVE_PORT:-8000}                 # the app's HTTP port
DASHBOARD=${RAY_DASHBOARD_PORT:-8265}    # the local head's dashboard (if serve up starts one)
LLMFT=${LLMFT:-llmft}
PYTHON=${PYTHON:-python}

$LLMFT tenants create acme
$LLMFT models build-tiny                                    # the built-in tiny base (or use your own model dir)
$LLMFT data register --spec "$SPECS/dataset.yaml" source="$DATA_DIR/train.jsonl"
$LLMFT data curate --spec "$SPECS/curate.yaml"
$LLMFT train submit --spec "$SPECS/train.yaml" --dry-run    # planned steps, epochs, tokens, truncation
$LLMFT train submit --spec "$SPECS/train.yaml" --wait       # follows the job; exits 1 if it failed
$LLMFT train events my-lora --tenant acme                   # data (rows cut / dropped), checkpoints, resumes
$LLMFT models register assistant --from-job my-lora --tenant acme
$LLMFT eval run --spec "$SPECS/eval.yaml" suites_dir="$DATA_DIR"
$LLMFT models promote assistant:1 --alias production --reason "passed its gates" --tenant acme
$LLMFT serve up --spec "$SPECS/serve.yaml" http.port="$PORT" dashboard_url="http://127.0.0.1:$DASHBOARD"  # once RUNNING
KEY=$($LLMFT keys create --tenant acme --role viewer | head -1)
LLMFT_KEY=$KEY "$PYTHON" - "$PORT" <<'PY'
import os, sys
from openai import OpenAI

client = OpenAI(base_url=f"http://127.0.0.1:{sys.argv[1]}/v1", api_key=os.environ["LLMFT_KEY"])
out = client.completions.create(model="assistant@production", prompt="How do I reset my password?", max_tokens=16)
print("answer:", repr(out.choices[0].text), "| served by", out.model_extra.get("llmft"))
PY
$LLMFT serve down assistant                                 # stops the local head `serve up` started
