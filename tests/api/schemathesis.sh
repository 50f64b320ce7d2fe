#!/usr/bin/env bash
# Schemathesis (PyPI, pinned) fuzzes the API from its description (docs/openapi.yaml) against
# a live stack, through the edge and through the CDN POP: every answer must be no server error,
# a status the description lists, its content type and its schema; a method a route does not
# take must be a 405 with Allow; a route that needs a token must refuse without one. A fixed
# seed and a bounded number of examples keep it to a few minutes and the same every run.
# Through the POP the operator's and loopback routes are left out: the POP does not serve
# them (404 by design, checked in edge/e2e/spellings.sh).
# Usage: schemathesis.sh EDGE_URL POP_URL SECRETS_DIR VENV_DIR [REPORT_DIR]
set -euo pipefail
EDGE=$1 POP=$2 SECRETS=$3 VENV=$4 REPORTS=${5:-}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VERSION=4.32.5
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $VERSION" ]; then
  # Debian's Python (a pyenv one may shadow it on PATH); one worker: some 3.11 releases
  # fail parsing in threads ("AST constructor recursion depth mismatch").
  "$(command -v /usr/bin/python3 || command -v python3)" -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$VERSION"
fi
ADMIN_TOKEN=$(cat "$SECRETS/admin.token")
SESSION_TOKEN=$(curl -fsS -X POST "$EDGE/api/login" -H "X-Forwarded-For: 10.77.0.1" \
  -d '{"user":"schemathesis"}' | jq -r .token)
export ADMIN_TOKEN SESSION_TOKEN
CONFIG=$(mktemp --suffix=.toml)
trap 'rm -f "$CONFIG"' EXIT
cat >"$CONFIG" <<'TOML'
[auth.openapi.session]
bearer = "${SESSION_TOKEN}"

[auth.openapi.admin]
bearer = "${ADMIN_TOKEN}"

# The edge refuses by the sale's state before it reads the parameters (cheapest first): an
# ended or not-yet-open sale answers 410 or 425 to a malformed request too. Each is a
# definite refusal.
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "409", "410", "413", "414", "422", "425", "429", "431"]
TOML
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,unsupported_method,allow_header_conformance,ignored_auth,missing_required_header
run() { # run NAME BASE_URL [FILTER ARGS...]
  local name=$1 base=$2
  shift 2
  echo "schemathesis: $name ($base)"
  "$VENV/bin/schemathesis" --config-file "$CONFIG" run "$ROOT/docs/openapi.yaml" --url "$base" \
    --checks "$CHECKS" --seed 20261205 --max-examples 12 --workers 1 --no-color \
    --phases examples,coverage,fuzzing,stateful --request-timeout 10 \
    ${REPORTS:+--report junit --report-dir "$REPORTS/$name"} "$@"
}
failed=0
run edge "$EDGE" --exclude-tag "internal (backend port, not through the edge)" || failed=1
run pop "$POP" --exclude-path-regex '^/(admin|edge|metrics|internal|healthz)' || failed=1
exit "$failed"
