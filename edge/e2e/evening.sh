#!/usr/bin/env bash
# An evening at the edges (issue 21), after the suite's 2,000-sale crowd, on two real edges
# and the real backend (started by scripts/test):
#   - a sale created now is known (and buyable) at every edge within 1 s;
#   - a sale sold out now is refused as sold out at every edge within 1 s;
#   - a paused sale is refused by the edge itself (409 "paused", the backend's buy counter
#     does not move) within 1 s, and buyable again within 1 s of its resumption; a sale ended
#     early is refused as ended;
#   - idle edges pull, and learn only changes (their revision follows the backend's).
# Each delay is the median of five tries (the edges pull every 0.5 s).
# Usage: evening.sh EDGE_URL EDGE2_URL BACKEND_URL ADMIN_TOKEN SECRETS_DIR
set -uo pipefail
EDGE=$1 EDGE2=$2 BACKEND=$3 ADMIN=$4 SECRETS=$5
source "$(dirname "$0")/lib.sh"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
sale() { # sale STOCK -> id (started now, an hour long)
  curl -fsS -X POST "$EDGE/admin/sales" -H "Authorization: Bearer $ADMIN" \
    -d "{\"title\":\"Evening e2e\",\"price_cents\":100,\"stock\":$1,\"starts_at\":\"now\",\"ends_at\":$(($(now_ms) + 3600000)),\"queue\":\"none\"}" | jq -r .id
}
admin() { curl -fsS -o /dev/null -X POST "$EDGE/admin/sales/$2/$1" -H "Authorization: Bearer $ADMIN"; }
# until_both JQ ID: ms until both edges' view of the sale satisfies JQ (10 s at most).
until_both() {
  local t0 e
  t0=$(now_ms)
  for e in "$EDGE" "$EDGE2"; do
    until curl -fsS "$e/edge/sales/$2" 2>/dev/null | jq -e "$1" >/dev/null 2>&1; do
      [ $(($(now_ms) - t0)) -lt 10000 ] || { echo 10000; return; }
      sleep 0.01
    done
  done
  echo $(($(now_ms) - t0))
}
median() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
link() { # link SALE TOKEN: the signed buy path the edge hands out after a captcha
  python3 - "$SECRETS/link.key" "${2%%.*}" "$1" <<'PY'
import hashlib, hmac, sys, time
key = open(sys.argv[1]).read().strip().encode()
msg = "l1.%s.%s.%d" % (sys.argv[2], sys.argv[3], int(time.time()) // 60)
print("/api/sales/%s/buy/%s" % (sys.argv[3], hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()))
PY
}
buy() { curl -s -o /dev/null -w '%{http_code}' -X POST "$EDGE$(link "$1" "$2")" -H "Authorization: Bearer $2"; }
backend_buys() { curl -fsS "$BACKEND/metrics" | awk '/^seckill_http_requests_total\{route="buy"/ {s += $2} END {print s + 0}'; }

new=() sold=()
for i in 1 2 3 4 5; do
  id=$(sale 1)
  new+=("$(until_both '.status == "open"' "$id")")
  token=$(curl -fsS -X POST "$EDGE/api/login" -d "{\"user\":\"evening-$id-$i\"}" | jq -r .token)
  check "the unit of sale $id is bought" 200 "$(buy "$id" "$token")"
  sold+=("$(until_both '.sold_out' "$id")")
done
echo "edges learn a new sale in ${new[*]} ms, a sold out in ${sold[*]} ms (medians $(median "${new[@]}"), $(median "${sold[@]}"))"
check "a new sale is known at both edges within 1 s (median of 5)" yes "$( [ "$(median "${new[@]}")" -le 1000 ] && echo yes || echo "no: ${new[*]} ms")"
check "a sold out reaches both edges within 1 s (median of 5)" yes "$( [ "$(median "${sold[@]}")" -le 1000 ] && echo yes || echo "no: ${sold[*]} ms")"

id=$(sale 100)
until_both '.status == "open"' "$id" >/dev/null
token=$(curl -fsS -X POST "$EDGE/api/login" -d "{\"user\":\"evening-pause-$id\"}" | jq -r .token)
paused=() resumed=()
for i in 1 2 3 4 5; do
  admin pause "$id"
  paused+=("$(until_both '.status == "paused"' "$id")")
  admin resume "$id"
  resumed+=("$(until_both '.status == "open"' "$id")")
done
echo "a pause reaches both edges in ${paused[*]} ms, a resumption in ${resumed[*]} ms"
check "a pause reaches both edges within 1 s (median of 5)" yes "$( [ "$(median "${paused[@]}")" -le 1000 ] && echo yes || echo "no: ${paused[*]} ms")"
check "a resumption reaches both edges within 1 s (median of 5)" yes "$( [ "$(median "${resumed[@]}")" -le 1000 ] && echo yes || echo "no: ${resumed[*]} ms")"
admin pause "$id"
until_both '.status == "paused"' "$id" >/dev/null
before=$(backend_buys)
body=$(curl -s -X POST "$EDGE$(link "$id" "$token")" -H "Authorization: Bearer $token")
check "a buy of a paused sale is refused with 409 paused" paused "$(echo "$body" | jq -r .error)"
check "... by the edge itself (the backend saw no buy)" "$before" "$(backend_buys)"
admin resume "$id"
until_both '.status == "open"' "$id" >/dev/null
check "buyable again once resumed" 200 "$(buy "$id" "$token")"
admin end "$id"
until_both '.status == "ended"' "$id" >/dev/null
check "a sale ended early is refused as ended" 410 "$(buy "$id" "$token")"

r1=$(curl -fsS "$EDGE/edge/sales" | jq -r .rev)
sleep 1.2
r2=$(curl -fsS "$EDGE/edge/sales" | jq -r .rev)
check "an idle edge's revision stays put (it learns changes only)" "$r1" "$r2"
check "the edge's pull answered within the last second" yes \
  "$(curl -fsS "$EDGE/edge/sales" | jq -r 'if .synced_s_ago < 1.5 then "yes" else "no: \(.synced_s_ago) s" end')"

finish evening
