#!/usr/bin/env bash
# The gate cannot be walked around by spelling a path differently. For every guarded route,
# a table of spellings (trailing slash, doubled slashes, +N, leading zeros, %2F/%2f, %2e%2e,
# percent-encoded digits, case, overlong ids, HEAD, lower-case methods, query strings) is sent
# through the edge and through the CDN POP: none returns a signed path without a captcha, and
# none reaches the backend's buy handler past the edge's checks (the sale is sold out and the
# link genuine, so any request that got through would show on the backend's buy counter).
# Then: every answer of nginx's own (400, 404, 405, 413, 414, 431) is the JSON error shape, JSON
# says nosniff, and the benchmark-only locations do not exist in the production config.
# Usage: spellings.sh EDGE_URL POP_URL BACKEND_URL SECRETS_DIR NGINX_ERROR_LOG
set -uo pipefail
EDGE=$1 POP=$2 BACKEND=$3 SECRETS=$4 ERRLOG=$5
ADMIN=$(cat "$SECRETS/admin.token")
source "$(dirname "$0")/lib.sh"
backend_buys() {
  curl -fsS "$BACKEND/metrics" | awk '/^seckill_http_requests_total\{route="buy"/ {s += $2} END {print s + 0}'
}
# send BASE METHOD PATH TOKEN -> "<status> <body>" (the path is sent exactly as written)
send() {
  local how=(-X "$2" -H 'Content-Type: application/x-www-form-urlencoded' --data '')
  [ "$2" = HEAD ] && how=(-I)
  [ "$2" = GET ] && how=()
  : >"$TMPF"
  curl -s --max-time 5 --path-as-is -o "$TMPF" -w '%{http_code}' "${how[@]}" \
    -H "Authorization: Bearer $4" "$1$3" 2>/dev/null
  echo " $(tr -d '\n' <"$TMPF" | head -c 300)"
}
sign_link() { # sign_link USER_TOKEN SALE -> the link signature for now
  python3 - "$SECRETS/link.key" "${1%%.*}" "$2" <<'PY'
import hashlib, hmac, sys, time
key = open(sys.argv[1]).read().strip().encode()
msg = "l1.%s.%s.%d" % (sys.argv[2], sys.argv[3], int(time.time()) // 60)
print(hmac.new(key, msg.encode(), hashlib.sha256).hexdigest())
PY
}
TMPF=$(mktemp)
trap 'rm -f "$TMPF"' EXIT

now=$(($(date +%s) * 1000))
sale=$(curl -fsS -X POST "$EDGE/admin/sales" -H "Authorization: Bearer $ADMIN" \
  -d "{\"title\":\"Spellings\",\"price_cents\":100,\"stock\":1,\"starts_at\":\"now\",\"ends_at\":$((now + 600000)),\"queue\":\"none\"}" | jq -r .id)
token=$(curl -fsS -X POST "$EDGE/api/login" -d "{\"user\":\"spell-$sale\"}" | jq -r .token)
sig=$(sign_link "$token" "$sale")
sleep 1.1 # the edge learns the sale
# The one unit goes to someone else: from now on the edge must answer this sale "sold out".
other=$(curl -fsS -X POST "$EDGE/api/login" -d "{\"user\":\"spell-other-$sale\"}" | jq -r .token)
osig=$(sign_link "$other" "$sale")
check "the sale's one unit sells" 200 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $other" "$EDGE/api/sales/$sale/buy/$osig")"
sleep 1.5 # the edge learns it is sold out

d1=${sale:0:1} rest=${sale:1}
spellings() { # spellings TAIL -> every non-canonical spelling of /api/sales/$sale/TAIL
  local t=$1
  printf '%s\n' \
    "/api/sales/$sale/$t/" "/api/sales/$sale/$t//" "/api//sales/$sale/$t" "//api/sales/$sale/$t" \
    "/api/sales//$sale/$t" "/api/sales/$sale//$t" "/api/sales/+$sale/$t" "/api/sales/0$sale/$t" \
    "/api/sales/00$sale/$t" "/api/sales/-$sale/$t" "/api/sales%2F$sale/$t" "/api/sales%2f$sale/$t" \
    "/api/sales/$sale%2F$t" "/api/sales/$sale%2f$t" "/api/sales/x/%2e%2e/$sale/$t" \
    "/api/sales/x/../$sale/$t" "/api/sales/./$sale/$t" "/api/sales/%3$d1$rest/$t" \
    "/api/%73ales/$sale/$t" "/API/sales/$sale/$t" "/api/Sales/$sale/$t" "/api/sales/$sale/${t^^}" \
    "/api/sales/${sale}99999999999999999999/$t" "/api/sales/$sale;x/$t" "/api/sales/$sale%00/$t" \
    "/api/sales/$sale%20/$t" "/api/sales/ $sale/$t"
}

for base in "$EDGE" "$POP"; do
  where=$([ "$base" = "$EDGE" ] && echo edge || echo POP)
  # 1. No spelling of /path hands out a signed link without a captcha.
  leaked=0 n=0
  while read -r p; do
    for m in POST HEAD GET PUT; do
      r=$(send "$base" "$m" "$p" "$token")
      n=$((n + 1))
      case "$r" in *'"path"'*|"200 "*) leaked=$((leaked + 1)); echo "  $where $m $p -> $r" >&2 ;; esac
    done
  done < <(spellings path; echo "/api/sales/$sale/path?captcha_token=x&answer=y"; echo "/api/sales/$sale/path")
  check "$where: none of $n spellings of /path returns a signed link without a captcha" 0 "$leaked"

  # 2. No spelling of buy gets past the edge to the backend (sold out: the edge answers 410).
  before=$(backend_buys)
  through=0 n=0
  while read -r p; do
    for m in POST HEAD; do
      r=$(send "$base" "$m" "$p" "$token")
      n=$((n + 1))
      case "$r" in "200 "*|"409 "*) through=$((through + 1)); echo "  $where $m $p -> $r" >&2 ;; esac
    done
    sleep 0.25 # stay under the per-user limit: a 429 would hide what the gate decides
  done < <(spellings "buy/$sig"; echo "/api/sales/$sale/buy/$sig?x=1"; echo "/api/sales/$sale/buy/$sig")
  check "$where: none of $n spellings of buy was answered by the backend" 0 "$through"
  check "$where: the backend's buy counter did not move" "$before" "$(backend_buys)"

  # 3. Everything else under /api/, /admin/, /internal/ that is not a known route is a 404.
  for p in /api/sales/$sale/captcha/ /api/orders/ /api/payments/notify/ /api/nowhere \
           /api/sales/$sale/orders/ /admin/nowhere /admin/sales/ /internal/sales /internal/sales/ \
           /api/time/ /api/login/ /__bare /__hello /metrics/ /healthz /api/healthz; do
    r=$(send "$base" GET "$p" "$token")
    check "$where: GET $p is a JSON 404" 404 "${r%% *}"
    check "$where: GET $p answers the JSON error shape" not_found "$(jq -r .error <<<"${r#* }" 2>/dev/null)"
  done
done

# 4. nginx's own errors answer in the JSON shape too (edge).
json_error() { # json_error CURL_ARGS... -> "<status> <error code> <content type>"
  curl -s --max-time 5 -o "$TMPF" -w '%{http_code} %{content_type}' "$@" | {
    read -r status ctype
    echo "$status $(jq -r .error <"$TMPF" 2>/dev/null || echo not-json) $ctype"
  }
}
big=$(head -c 20000 /dev/zero | tr '\0' 'a')
check "413: a body over the limit" "413 body_too_large application/json" \
  "$(json_error -X POST "$EDGE/api/login" --data-binary "$big")"
check "414: an overlong request line" "414 uri_too_long application/json" \
  "$(json_error "$EDGE/api/time?$(head -c 9000 /dev/zero | tr '\0' 'q')")"
check "431: an overlong header" "431 headers_too_large application/json" \
  "$(json_error -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' 'h')" "$EDGE/api/time")"
check "405: a method the route does not take" "405 method_not_allowed application/json" \
  "$(json_error -X PUT "$EDGE/api/login")"
check "405: GET on the Lua path route" "405 method_not_allowed application/json" \
  "$(json_error "$EDGE/api/sales/$sale/path")"
check "400: a lower-case method" "400 bad_request application/json" \
  "$(json_error -X post "$EDGE/api/sales/$sale/path")"
check "400: a mixed-case method" "400 bad_request application/json" \
  "$(json_error -X Post "$EDGE/api/sales/$sale/buy/$sig")"
raw_status() { # raw_status BASE REQUEST_BYTES -> "<status line> | <JSON error code>"
  python3 - "${1#http://}" "$2" <<'PY'
import json, socket, sys
host, port = sys.argv[1].split(":")
s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
head, _, body = data.partition(b"\r\n\r\n")
try:
    code = json.loads(body.decode())["error"]
except Exception:
    code = "not-json"
print(head.split(b"\r\n")[0].decode().split(" ")[1], code)
PY
}
for base in "$EDGE" "$POP"; do
  where=$([ "$base" = "$EDGE" ] && echo edge || echo POP)
  check "$where: 400 for a malformed request line" "400 bad_request" \
    "$(raw_status "$base" 'GARBAGE /api/time HTTP/1.1 extra\r\nHost: x\r\n\r\n')"
  check "$where: 505 for an HTTP/2.0 request line" "505 http_version_not_supported" \
    "$(raw_status "$base" 'GET /api/time HTTP/2.0\r\nHost: x\r\nConnection: close\r\n\r\n')"
  check "$where: 501 for an unknown transfer coding" "501 not_implemented" \
    "$(raw_status "$base" 'POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n')"
  check "$where: 400 for a lower-case method" "400 bad_request" \
    "$(raw_status "$base" 'post /api/time HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')"
  check "$where: 400 for a NUL in the path" "400 bad_request" \
    "$(raw_status "$base" 'GET /api/sales/1%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')"
  check "$where: 414 for an overlong request line" "414 uri_too_long" \
    "$(json_error "$base/api/time?$(head -c 9000 /dev/zero | tr '\0' 'q')" | cut -d' ' -f1,2)"
done
# 5. Issue 24's contract holes, through the edge and through the POP: every 405 is JSON with
# an Allow header naming the methods (TRACE and CONNECT too, which nginx refuses before any
# location); a body over the limit is the JSON 413 at the POP as at the edge; an HTTP/1.0
# request without Host reaches the edge through the POP; a page's slash-less address is a
# relative redirect without an HTML body.
allow_of() { # allow_of CURL_ARGS... -> "<status> <error code> <Allow>"
  local h
  h=$(curl -s --max-time 5 -D - -o "$TMPF" "$@" | tr -d '\r')
  echo "$(head -1 <<<"$h" | cut -d' ' -f2) $(jq -r .error <"$TMPF" 2>/dev/null || echo not-json) $(grep -i '^allow:' <<<"$h" | cut -d' ' -f2-)"
}
for base in "$EDGE" "$POP"; do
  where=$([ "$base" = "$EDGE" ] && echo edge || echo POP)
  check "$where: TRACE /api/time: 405 JSON, Allow" "405 method_not_allowed GET, HEAD" \
    "$(allow_of -X TRACE "$base/api/time")"
  check "$where: TRACE /api/login: Allow names POST" "405 method_not_allowed POST" \
    "$(allow_of -X TRACE "$base/api/login")"
  check "$where: CONNECT: 405 JSON" "405 method_not_allowed" \
    "$(raw_status "$base" 'CONNECT /api/time HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')"
  check "$where: PUT /api/login: Allow names POST" "405 method_not_allowed POST" \
    "$(allow_of -X PUT "$base/api/login")"
  check "$where: PUT on the queue: Allow GET, HEAD, POST" "405 method_not_allowed GET, HEAD, POST" \
    "$(allow_of -X PUT "$base/api/sales/$sale/queue")"
  check "$where: GET on the Lua path route: Allow POST" "405 method_not_allowed POST" \
    "$(allow_of "$base/api/sales/$sale/path")"
  check "$where: 405 names the method to use" "method not allowed on this path; use GET, HEAD" \
    "$(curl -s -X DELETE "$base/api/orders" | jq -r .message)"
  check "$where: 2 MB login: JSON 413" "413 body_too_large application/json" \
    "$(head -c 2000000 /dev/zero | json_error -X POST --data-binary @- "$base/api/login")"
  check "$where: HTTP/1.0 without Host" "200 not-json" \
    "$(raw_status "$base" 'GET /api/time HTTP/1.0\r\n\r\n')"
  r=$(curl -s -D - -o "$TMPF" "$base/sales/$sale" | tr -d '\r')
  check "$where: a slash-less page address: relative 301, no HTML" "301 /sales/$sale/ 0" \
    "$(head -1 <<<"$r" | cut -d' ' -f2) $(grep -i '^location:' <<<"$r" | cut -d' ' -f2) $(grep -ci '<html' "$TMPF")"
done
check "admin: PUT /admin/sales: Allow" "405 method_not_allowed GET, HEAD, POST" \
  "$(allow_of -X PUT -H "Authorization: Bearer $ADMIN" "$EDGE/admin/sales")"
check "admin: DELETE a sale: Allow" "405 method_not_allowed GET, HEAD, PATCH" \
  "$(allow_of -X DELETE -H "Authorization: Bearer $ADMIN" "$EDGE/admin/sales/$sale")"
check "416 for a range past the end of a page" "416 range_not_satisfiable" \
  "$(json_error -H 'Range: bytes=999999-' "$EDGE/ops/index.html" | cut -d' ' -f1,2)"
check "errors are no-store too" 1 \
  "$(curl -s -D - -o /dev/null "$EDGE/api/nowhere" | grep -ci '^cache-control: no-store')"

# The backend acts for exactly the session the edge checked: a Cookie header that nginx's
# parser and the backend's would read differently (name case, `,` separators) cannot make the
# edge check one shopper and the backend serve another.
fresh=$(curl -fsS -X POST "$EDGE/admin/sales" -H "Authorization: Bearer $ADMIN" \
  -d "{\"title\":\"Cookies\",\"price_cents\":100,\"stock\":5,\"starts_at\":\"now\",\"ends_at\":$((now + 600000)),\"queue\":\"none\"}" | jq -r .id)
sleep 1.1
fsig=$(sign_link "$token" "$fresh")
r=$(curl -s -w ' %{http_code}' -X POST "$EDGE/api/sales/$fresh/buy/$fsig" \
  -H "Cookie: SK_SESSION=$token; sk_session=$other")
check "the shopper the edge checked is the one who buys" 200 "${r##* }"
check "...and the order is that shopper's" "$fresh" "$(jq -r .sale_id <<<"${r% *}")"
check "a form body over 8 KiB on /path is a 403 (no captcha), not a 5xx" 403 \
  "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$EDGE/api/sales/$fresh/path" -H "Authorization: Bearer $token" \
     --data "captcha_token=x&answer=y&pad=$(head -c 12000 /dev/zero | tr '\0' a)")"

hdrs=$(curl -s -D - -o /dev/null "$EDGE/api/sales/$sale")
check "edge JSON says nosniff" 1 "$(grep -ci '^x-content-type-options: nosniff' <<<"$hdrs")"
hdrs=$(curl -s -D - -o /dev/null "$EDGE/api/nowhere")
check "the edge's 404 says nosniff" 1 "$(grep -ci '^x-content-type-options: nosniff' <<<"$hdrs")"
hdrs=$(curl -s -D - -o /dev/null "$BACKEND/api/sales/$sale")
check "backend JSON says nosniff" 1 "$(grep -ci '^x-content-type-options: nosniff' <<<"$hdrs")"

# The 413 above is logged by nginx as an error of the client's; nothing else may be.
if grep -E '\[error\]|writing a global Lua variable' "$ERRLOG" | grep -v 'client intended to send too large body' >&2; then
  check "nginx error log is clean" clean dirty
else
  check "nginx error log is clean" clean clean
fi

finish edge-spellings
