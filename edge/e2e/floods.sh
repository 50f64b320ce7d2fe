#!/usr/bin/env bash
# A flood of order polls from one shopper, and of logins from one address, is refused at the
# edge, through the edge and through the CDN POP, and does not move MariaDB's query rate: for
# two seconds one client sends as fast as it can; the selects MariaDB ran meanwhile are
# compared with two quiet seconds just before (the lifecycle loops' own queries). Without
# the edge's limits each poll was a MariaDB query (issue 24: 60 polls in 0.08 s all reached
# it); the order cache answers the polls that pass.
# Usage: floods.sh EDGE_URL POP_URL BACKEND_URL SECRETS_DIR MYSQL_URL
set -uo pipefail
EDGE=$1 POP=$2 BACKEND=$3 SECRETS=$4 MYSQL_URL=$5
ADMIN=$(cat "$SECRETS/admin.token")
source "$(dirname "$0")/lib.sh"

# mysql://user:pass@host:port/db -> the mariadb client's options
read -r m_user m_pass m_host m_port < <(python3 - "$MYSQL_URL" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
print(urllib.parse.unquote(u.username), urllib.parse.unquote(u.password), u.hostname, u.port or 3306)
PY
)
selects() {
  MYSQL_PWD=$m_pass mariadb -h "$m_host" -P "$m_port" -u "$m_user" -N -B \
    -e "SHOW GLOBAL STATUS LIKE 'Com_select'" | awk '{print $2}'
}
backend_count() { # backend_count ROUTE
  curl -fsS "$BACKEND/metrics" | awk -v r="route=\"$1\"" 'index($0, "seckill_http_requests_total{") == 1 && index($0, r) {s += $2} END {print s + 0}'
}
# flood SECONDS METHOD URL [TOKEN] -> "<requests> <refused with 429>", as fast as one client can
flood() {
  python3 - "$@" <<'PY'
import http.client, sys, time, urllib.parse
seconds, method, url = float(sys.argv[1]), sys.argv[2], urllib.parse.urlparse(sys.argv[3])
token = sys.argv[4] if len(sys.argv) > 4 else None
headers = {"Authorization": f"Bearer {token}"} if token else {"Content-Type": "application/json"}
body = None if token else '{"user":"flood"}'
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
sent = refused = 0
end = time.time() + seconds
while time.time() < end:
    conn.request(method, url.path, body=body, headers=headers)
    r = conn.getresponse()
    r.read()
    sent += 1
    refused += r.status == 429
print(sent, refused)
PY
}
sign_link() { # sign_link USER_TOKEN SALE -> the link signature for now
  python3 - "$SECRETS/link.key" "${1%%.*}" "$2" <<'PY'
import hashlib, hmac, sys, time
key = open(sys.argv[1]).read().strip().encode()
msg = "l1.%s.%s.%d" % (sys.argv[2], sys.argv[3], int(time.time()) // 60)
print(hmac.new(key, msg.encode(), hashlib.sha256).hexdigest())
PY
}

now=$(($(date +%s) * 1000))
sale=$(curl -fsS -X POST "$EDGE/admin/sales" -H "Authorization: Bearer $ADMIN" \
  -d "{\"title\":\"Floods\",\"price_cents\":100,\"stock\":5,\"starts_at\":\"now\",\"ends_at\":$((now + 600000)),\"queue\":\"none\"}" | jq -r .id)
token=$(curl -fsS -X POST "$EDGE/api/login" -H "X-Forwarded-For: 10.24.0.1" -d "{\"user\":\"flood-$sale\"}" | jq -r .token)
sleep 1.1 # the edge learns the sale
order=$(curl -fsS -X POST -H "Authorization: Bearer $token" "$EDGE/api/sales/$sale/buy/$(sign_link "$token" "$sale")" | jq -r .order_id)
for _ in $(seq 50); do # the writer puts the order into MariaDB
  [ "$(curl -s -H "Authorization: Bearer $token" "$EDGE/api/orders/$order" | jq -r .status)" = created ] && break
  sleep 0.1
done
check "the order is in MariaDB" created "$(curl -s -H "Authorization: Bearer $token" "$EDGE/api/orders/$order" | jq -r .status)"

quiet_then_flood() { # quiet_then_flood NAME METHOD URL [TOKEN]
  local a b c sent refused quiet busy
  a=$(selects); sleep 2; b=$(selects)
  read -r sent refused < <(flood 2 "$2" "$3" "${4:-}")
  c=$(selects)
  quiet=$((b - a)) busy=$((c - b))
  echo "  $1: $sent requests in 2 s, $refused refused at the edge; MariaDB selects: $quiet quiet, $busy flooded"
  check "$1: the edge refuses nearly all of the flood" 1 "$((refused * 10 >= sent * 9))"
  # Unlimited, each request was a query (thousands); the limit lets ~8 a second through and
  # the background's own rate varies by a few dozen between windows.
  check "$1: MariaDB's select rate does not move (within 100 of the quiet window)" 1 "$((busy <= quiet + 100))"
}
for base in "$EDGE" "$POP"; do
  where=$([ "$base" = "$EDGE" ] && echo edge || echo POP)
  quiet_then_flood "$where: polls of one order" GET "$base/api/orders/$order" "$token"
  quiet_then_flood "$where: the sale's orders" GET "$base/api/sales/$sale/orders" "$token"
  quiet_then_flood "$where: all my orders" GET "$base/api/orders" "$token"
done
before=$(backend_count login)
read -r sent refused < <(flood 2 POST "$EDGE/api/login")
reached=$(( $(backend_count login) - before ))
echo "  logins from one address: $sent in 2 s, $refused refused, $reached reached the backend"
check "logins: the edge refuses nearly all of a flood from one address" 1 "$((refused * 10 >= sent * 9))"
# 2 s of flood touch three one-second windows of the limiter.
check "logins: at most login_ip_per_s (10) a second reach the backend" 1 "$((reached <= 30))"
sleep 1.1 # the limiter's windows close: the next script's logins from this address pass
finish edge-floods
