#!/usr/bin/env bash
# Checks the ops files against a live stack:
#   ops/check.sh http://127.0.0.1:8080 http://127.0.0.1:8081
# - promtool check config / test rules (the alert rules' unit tests);
# - the Grafana dashboard parses, and every metric its queries and the alert rules name
#   exists in a live /metrics scrape of the edge or the backend.
set -euo pipefail
cd "$(dirname "$0")"
EDGE=${1:?edge URL}
BACKEND=${2:?backend URL}
promtool check config prometheus.yml >/dev/null
promtool test rules alerts_test.yml
jq -e '.panels | length > 0' grafana/seckill.json >/dev/null || { echo "dashboard: not valid JSON with panels" >&2; exit 1; }
scrape=$(mktemp)
trap 'rm -f "$scrape"' EXIT
curl -fsS "$EDGE/metrics" >"$scrape"
curl -fsS "$BACKEND/metrics" >>"$scrape"
missing=0 checked=0
for name in $( (jq -r '.. | objects | select(has("expr")) | .expr' grafana/seckill.json
                grep -E '^\s+expr:' alerts.yml) | grep -o 'seckill_[a-z_]*' | sort -u); do
  checked=$((checked + 1))
  if ! grep -q "^${name}[{ ]" "$scrape"; then
    echo "ops: $name is queried but not in the live /metrics" >&2
    missing=$((missing + 1))
  fi
done
[ "$missing" -eq 0 ] || exit 1
echo "ops: $checked metrics queried by the dashboard and alerts, all present in the live scrape"
