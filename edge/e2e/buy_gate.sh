#!/usr/bin/env bash
# End-to-end test of the edge against a real nginx and a real backend (started by
# scripts/test): the buy flow through the edge, and every link or session the edge must
# refuse, each checked to be refused by nginx itself (the backend's buy counter does not
# move). Usage: buy_gate.sh EDGE_URL BACKEND_URL SECRETS_DIR NGINX_ERROR_LOG RELOAD_COMMAND...
set -uo pipefail
EDGE=$1 BACKEND=$2 SECRETS=$3 ERRLOG=$4
RELOAD=("${@:5}")
ADMIN=$(cat "$SECRETS/admin.token")
source "$(dirname "$0")/lib.sh"


# Requests that reached the backend's buy handler, whatever their status.
backend_buys() {
  curl -fsS "$BACKEND/metrics" | awk '/^seckill_http_requests_total\{route="buy"/ {s += $2} END {print s + 0}'
}

post() { # post URL TOKEN -> status
  local auth=()
  [ -n "${2:-}" ] && auth=(-H "Authorization: Bearer $2")
  curl -s -o /dev/null -w '%{http_code}' -X POST "${auth[@]}" "$1"
}

now=$(($(date +%s) * 1000))
sale=$(curl -fsS -X POST "$EDGE/admin/sales" -H "Authorization: Bearer $ADMIN" \
  -d "{\"title\":\"Edge test\",\"price_cents\":100,\"stock\":5,\"starts_at\":\"now\",\"ends_at\":$((now + 600000)),\"queue\":\"none\"}" | jq -r .id)
alice=$(curl -fsS -X POST "$EDGE/api/login" -d '{"user":"edge-alice"}' | jq -r .token)
bob=$(curl -fsS -X POST "$EDGE/api/login" -d '{"user":"edge-bob"}' | jq -r .token)
sleep 1.1 # the edge learns the new sale from the backend (every 0.5 s)
# proof of work (from the edge, solved here) -> captcha (from the backend, answer read through
# the test-only hook) -> path from the edge. Each shopper may make 5 requests a second.
pow_solve() { # pow_solve CHALLENGE BITS [wrong] -> the smallest solution (or non-solution)
  python3 - "$1" "$2" "${3:-}" <<'PY'
import hashlib, sys
t, bits, wrong, x = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "wrong", 0
solves = lambda x: not int.from_bytes(hashlib.sha256(f"{t}.{x}".encode()).digest()[:4], "big") >> (32 - bits)
while solves(x) == wrong:
    x += 1
print(x)
PY
}
challenge() { # challenge TOKEN SALE -> "<challenge> <bits>"
  curl -fsS -X POST "$EDGE/api/sales/$2/pow" -H "Authorization: Bearer $1" | jq -r '.challenge + " " + (.bits | tostring)'
}
captcha_with() { # captcha_with TOKEN SALE CHALLENGE SOLUTION -> status
  curl -s -o /dev/null -w '%{http_code}' -X POST "$EDGE/api/sales/$2/captcha?pow=$3&pow_solution=$4" \
    -H "Authorization: Bearer $1"
}
captcha() { # captcha TOKEN SALE -> "<captcha token> <answer>"
  local c bits
  read -r c bits <<<"$(challenge "$1" "$2")"
  curl -fsS -X POST "$EDGE/api/sales/$2/captcha?pow=$c&pow_solution=$(pow_solve "$c" "$bits")" \
    -H "Authorization: Bearer $1" | jq -r '.token + " " + .answer'
}
path_with() { # path_with TOKEN SALE CAPTCHA_TOKEN ANSWER -> status and body
  curl -s -w ' %{http_code}' -X POST "$EDGE/api/sales/$2/path" -H "Authorization: Bearer $1" \
    --data-urlencode "captcha_token=$3" --data-urlencode "answer=$4"
}
pause() { sleep 1.05; } # a new second of the per-user limit

# Proof of work: a captcha needs a solved, fresh, unused challenge of this user and sale.
read -r c bits <<<"$(challenge "$bob" "$sale")"
check "the edge issues a proof-of-work challenge" 1 "$([ "$bits" -ge 1 ] && echo 1 || echo 0)"
check "no captcha without a proof of work" 403 "$(captcha_with "$bob" "$sale" "" "")"
check "no captcha for a wrong solution" 403 "$(captcha_with "$bob" "$sale" "$c" "$(pow_solve "$c" "$bits" wrong)")"
solution=$(pow_solve "$c" "$bits")
check "no captcha for another user's solved challenge" 403 "$(captcha_with "$alice" "$sale" "$c" "$solution")"
pause
check "a solved challenge gets a captcha" 200 "$(captcha_with "$bob" "$sale" "$c" "$solution")"
check "a replayed solution is refused" 403 "$(captcha_with "$bob" "$sale" "$c" "$solution")"
forged=$(echo "$c" | awk -F. -v OFS=. '{$4 = 1; print}') # claims 1 bit of work
check "a challenge with its difficulty altered is refused" 403 "$(captcha_with "$bob" "$sale" "$forged" "$(pow_solve "$forged" 1)")"
stale=$(python3 - "$SECRETS/captcha.key" "${bob%%.*}" "$sale" "$bits" <<'PY'
import hashlib, hmac, sys, time
captcha_key = open(sys.argv[1]).read().strip().encode()
key = hmac.new(captcha_key, b"seckill proof-of-work key v1", hashlib.sha256).hexdigest().encode()
exp = int(time.time()) - 1
body = "%s.%s.%d.%s.%s" % (sys.argv[2], sys.argv[3], exp, sys.argv[4], "00aa00aa00aa00aa")
print(body + "." + hmac.new(key, ("p1." + body).encode(), hashlib.sha256).hexdigest())
PY
)
pause
check "a stale (expired) challenge is refused" 403 "$(captcha_with "$bob" "$sale" "$stale" "$(pow_solve "$stale" "$bits")")"
check "a challenge from another sale is refused" 403 "$(captcha_with "$bob" "$((sale + 1000))" "$c" "$solution")"
pause

read -r ctoken answer <<<"$(captcha "$alice" "$sale")"
check "a wrong captcha answer is refused" 403 "$(path_with "$alice" "$sale" "$ctoken" WRONG | tail -n1 | tr -d ' ')"
check "the spent captcha cannot be answered again" 403 "$(path_with "$alice" "$sale" "$ctoken" "$answer" | tail -n1 | tr -d ' ')"
pause
read -r ctoken answer <<<"$(captcha "$alice" "$sale")"
check "another user cannot use alice's captcha" 403 "$(path_with "$bob" "$sale" "$ctoken" "$answer" | tail -n1 | tr -d ' ')"
forged_token="${ctoken%.*}.$(printf '0%.0s' {1..64})"
check "a made-up captcha token is refused" 403 "$(path_with "$alice" "$sale" "$forged_token" "$answer" | tail -n1 | tr -d ' ')"
pause
check "...and did not spend the genuine token with its nonce" 200 "$(path_with "$alice" "$sale" "$ctoken" "$answer" | tail -n1 | tr -d ' ')"
pause
read -r ctoken answer <<<"$(captcha "$alice" "$sale")"
pause
reply=$(path_with "$alice" "$sale" "$ctoken" "$answer")
check "the right captcha answer gets the path" 200 "${reply##* }"
path=$(echo "${reply% *}" | jq -r .path)
check "a reused captcha is refused" 403 "$(path_with "$alice" "$sale" "$ctoken" "$answer" | tail -n1 | tr -d ' ')"
sleep 1.1 # alice has used her 5 requests of this second (the per-user limit)
sig=${path##*/}

t=$(curl -fsS "$EDGE/api/time" | jq -r .now_ms)
check "edge clock is epoch ms" 1 "$([ "$t" -gt "$now" ] && echo 1 || echo 0)"

before=$(backend_buys)
check "forged link" 403 "$(post "$EDGE/api/sales/$sale/buy/$(printf '0%.0s' {1..64})" "$alice")"
check "altered link" 403 "$(post "$EDGE/api/sales/$sale/buy/${sig:0:63}x" "$alice")"
check "truncated link" 403 "$(post "$EDGE/api/sales/$sale/buy/${sig:0:40}" "$alice")"
check "another user's link" 403 "$(post "$EDGE$path" "$bob")"
check "another sale's link" 403 "$(post "$EDGE/api/sales/$((sale + 1000))/buy/$sig" "$alice")"
check "no session" 401 "$(post "$EDGE$path" "")"
flipped=${alice%?}$([ "${alice: -1}" = 0 ] && echo 1 || echo 0)
check "forged session" 403 "$(post "$EDGE$path" "$flipped")"
check "garbage session" 403 "$(post "$EDGE$path" "not-a-token")"
check "refusals never reached the backend" "$before" "$(backend_buys)"

sleep 1.1 # alice has used her 5 requests of this second (the per-user limit)
check "the real link buys" 200 "$(post "$EDGE$path" "$alice")"
check "a second buy is refused by the backend" 409 "$(post "$EDGE$path" "$alice")"
check "exactly the two valid requests reached the backend" "$((before + 2))" "$(backend_buys)"

# A valid link signed with the real key (as an attacker who got one would hold it), for sales
# the edge must refuse on their state alone.
sign_link() { # sign_link USER_TOKEN SALE [AGE_SECONDS]
  python3 - "$SECRETS/link.key" "${1%%.*}" "$2" "${3:-0}" <<'PY'
import hashlib, hmac, sys, time
key = open(sys.argv[1]).read().strip().encode()
msg = "l1.%s.%s.%d" % (sys.argv[2], sys.argv[3], (int(time.time()) - int(sys.argv[4])) // 60)
print(hmac.new(key, msg.encode(), hashlib.sha256).hexdigest())
PY
}
create_sale() { # create_sale STOCK STARTS_OFFSET_MS
  local now=$(($(date +%s) * 1000))
  curl -fsS -X POST "$EDGE/admin/sales" -H "Authorization: Bearer $ADMIN" \
    -d "{\"title\":\"Edge test\",\"price_cents\":100,\"stock\":$1,\"starts_at\":$((now + $2)),\"ends_at\":$((now + 1200000)),\"queue\":\"none\"}" | jq -r .id
}
later=$(create_sale 5 600000)
sold=$(create_sale 1 -1000)
sleep 1.1
check "the sold-out sale's one unit sells" 200 "$(post "$EDGE/api/sales/$sold/buy/$(sign_link "$alice" "$sold")" "$alice")"
sleep 1.5 # the edge pulls sale state every 0.5 s
before=$(backend_buys)
check "an expired link (signed 3 minutes ago) is refused" 403 \
  "$(post "$EDGE/api/sales/$sale/buy/$(sign_link "$bob" "$sale" 180)" "$bob")"
check "the expired link never reached the backend" "$before" "$(backend_buys)"
before=$(backend_buys)
check "not started, refused at the edge" 425 "$(post "$EDGE/api/sales/$later/buy/$(sign_link "$alice" "$later")" "$alice")"
check "sold out, refused at the edge" 410 "$(post "$EDGE/api/sales/$sold/buy/$(sign_link "$bob" "$sold")" "$bob")"
check "state refusals never reached the backend" "$before" "$(backend_buys)"

# Rate limits. Per user: 12 buys at once by one shopper, at most 5 pass in each second the
# burst touches (however long a busy machine takes to send it).
t0=$(date +%s)
limited=$(seq 12 | xargs -P 12 -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST \
  -H "Authorization: Bearer $bob" "$EDGE$path" | grep -c '^429$')
seconds=$(($(date +%s) - t0 + 1))
check "per-user limit refuses a burst" 1 "$([ $((12 - limited)) -le $((5 * seconds)) ] && echo 1 || echo 0)"
echo "per-user limit: $((12 - limited)) of 12 passed within $seconds s"

# Per address: 200 requests from 127.0.0.2 (not a trusted proxy), each with a new forged
# X-Forwarded-For: the header is ignored, all count against 127.0.0.2.
burst() { # burst SOURCE_ADDRESS -> number of 429s among 200 requests
  seq 200 | xargs -P 16 -I{} curl -s -o /dev/null -w '%{http_code}\n' --interface "$1" \
    -X POST -H "X-Forwarded-For: 10.9.$(( RANDOM % 200 )).{}" "$EDGE$path" | grep -c '^429$'
}
# 50 a second per address: of 200, at most 50 pass in each second the burst touches.
t0=$(date +%s)
refused=$(burst 127.0.0.2)
seconds=$(($(date +%s) - t0 + 1))
check "spoofed X-Forwarded-For does not lift the per-address limit" 1 \
  "$([ $((200 - refused)) -le $((50 * seconds)) ] && echo 1 || echo 0)"
echo "per-address limit, spoofed X-Forwarded-For: $((200 - refused)) of 200 passed within $seconds s"
# From the trusted proxy (127.0.0.1) the header is the client: 200 different clients pass.
check "X-Forwarded-For from a trusted proxy names the client" 0 "$(burst 127.0.0.1)"

# The admission cap: a sale with 2 units left admits at most 3 x 2 buys a second. 40 shoppers
# who each already hold one of its units (42 units, 40 bought first, one at a time) ask again
# all at once: the backend answers each of them 409 without taking a unit, so the sale cannot
# sell out under the burst (which would turn the rest into 410s) and the cap alone decides.
# However long the burst takes, at most 6 buys pass in each second it touches.
capped=$(create_sale 42 -1000)
sleep 1.1 # the edge learns the sale and its stock
links=$(mktemp)
firsts=""
for i in $(seq 40); do
  tok=$(curl -fsS -X POST "$EDGE/api/login" -H "X-Forwarded-For: 10.67.0.$i" \
    -d "{\"user\":\"crowd-$capped-$i\"}" | jq -r .token)
  path_i="/api/sales/$capped/buy/$(sign_link "$tok" "$capped")"
  firsts+=$(curl -s -o /dev/null -w '%{http_code} ' -X POST -H "X-Forwarded-For: 10.67.0.$i" \
    -H "Authorization: Bearer $tok" "$EDGE$path_i")
  echo "$tok $i $path_i" >>"$links"
done
check "admission cap: 40 of the 42 units bought first, one at a time" 40 "$(echo "$firsts" | tr ' ' '\n' | grep -c '^200$')"
sleep 1.1 # the edge learns that 2 units are left (every change is told at 10 or fewer)
before=$(backend_buys)
t0=$(date +%s)
codes=$(xargs -P 40 -L 1 sh -c 'curl -s -o /dev/null -w "%{http_code}\n" -X POST -H "X-Forwarded-For: 10.67.0.$1" -H "Authorization: Bearer $0" "'"$EDGE"'$2"' <"$links")
seconds=$(($(date +%s) - t0 + 1))
rm -f "$links"
admitted=$(($(backend_buys) - before))
check "admission cap: at most 3 x 2 buys a second reach the backend" 1 \
  "$([ "$admitted" -ge 1 ] && [ "$admitted" -le $((6 * seconds)) ] && echo 1 || echo 0)"
check "admission cap: those that passed were told 409 (they hold a unit)" "$admitted" "$(echo "$codes" | grep -c '^409$')"
check "admission cap: the rest were refused at the edge with 429" $((40 - admitted)) "$(echo "$codes" | grep -c '^429$')"
check "admission cap: the cap refused some" 1 "$([ "$admitted" -lt 40 ] && echo 1 || echo 0)"
echo "admission cap: $admitted of 40 passed within $seconds s, the rest refused with 429"
sleep 1.2 # workers add their counts to the metrics dict every second
check "edge metrics count the refusals" 1 \
  "$(curl -fsS "$EDGE/metrics" | grep -c 'seckill_edge_requests_total{route="buy",outcome="over_admission"}')"

# nginx -s reload in the middle of a stream of requests: none fails, and the sold-out flag
# (in a shared dict) is still there for the new workers.
stream_log=$(mktemp)
seq 600 | xargs -P 4 -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST \
  "$EDGE/api/sales/$sold/buy/$(sign_link "$bob" "$sold")" >"$stream_log" &
stream=$!
sleep 0.2; "${RELOAD[@]}"; sleep 0.3; "${RELOAD[@]}"
wait "$stream"
check "600 requests across two reloads, all answered" 600 "$(wc -l <"$stream_log")"
check "every one answered sold out by the edge" 600 "$(grep -c '^410$' "$stream_log")"
rm -f "$stream_log"

if grep -E '\[error\]|writing a global Lua variable' "$ERRLOG" | grep -v 'client intended to send too large body' >&2; then
  check "nginx error log is clean" clean dirty
else
  check "nginx error log is clean" clean clean
fi

# One source for the constants the edge and the backend must agree on (the link window, the
# captcha's lifetime, how early captchas and lines open): the edge uses what the backend's
# pull answers carry, not values of its own.
backend_shared=$(curl -fsS "$BACKEND/internal/sales?full=999999999" | grep '^#shared ')
edge_shared=$(curl -fsS "$EDGE/edge/sales" | jq -r '.shared | "#shared link_window_s=\(.link_window_s) captcha_ttl_s=\(.captcha_ttl_s) early_ms=\(.early_ms) queue_opens_ms=\(.queue_opens_ms)"')
check "the edge uses the backend's shared constants" "$backend_shared" "$edge_shared"

# No work is handed out for a sale the edge does not know (Schemathesis found a 200 for
# /api/sales/2147483648/pow): a fresh shopper, so no per-user limit answers first.
stranger=$(curl -fsS -X POST "$EDGE/api/login" -H "X-Forwarded-For: 10.68.0.1" \
  -d '{"user":"edge-pow-stranger"}' | jq -r .token)
check "no proof of work for a sale the edge does not know" 404 "$(curl -s -o /dev/null -w '%{http_code}' \
  -X POST -H "X-Forwarded-For: 10.68.0.1" -H "Authorization: Bearer $stranger" "$EDGE/api/sales/2147483648/pow")"
finish edge-e2e
