#!/usr/bin/env bash
# The fleet suite (scripts/test --fleet): a whole fleet from scripts/fleet on free ports under
# a temp dir (POP -> 2 edges -> 2 backends -> Redis Cluster 3 masters + 3 replicas, MariaDB
# primary + GTID replica), crowds through the POP, and real processes killed for real:
#   1. a crowd: exact sale, every edge and every backend served part of it;
#   2. kill -9 of the Redis master that owns the sale mid-crowd (16 s at 2,000 shoppers/s), WAIT off: never oversold,
#      the lost `queued` answers counted, the promoted replica detected and rebuilt, buying
#      resumes by itself, drift 0;
#   3. a rolling restart of both backends (switching WAIT on) and reloads of both edges
#      mid-crowd: zero failed requests;
#   4. kill -9 of the sale's master again, WAIT on: no `queued` answer lost;
#   5. kill -9 of one backend mid-crowd: the other's writer claims its pending entries, every
#      `queued` answer lands once;
#   6. kill -9 of one edge mid-crowd: the POP moves its shoppers, no 5xx storm, no shopper
#      with two orders;
#   7. the MariaDB replica holds the same orders as the primary;
#   8. WAIT's cost on this fleet's Cluster (the backend's reserver, batched, with and without).
# The last line is one JSON object (a contract):
# {"edges","backends","redis_masters","redis_replicas","mariadb_replicas","failover",
#  "queued_lost_with_wait","queued_lost_without_wait","oversold","drift","wait_cost_ratio"}
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

F=$(mktemp -d /tmp/seckill-fleet.XXXXXX)
chmod 755 "$F"
export FLEET_DIR=$F
# 13 distinct ports below Linux's ephemeral range (32768+), their +10000 (the Cluster bus)
# too, so that no outgoing connection of the crowd can hold a port a killed node restarts on.
read -r -a PORTS <<<"$(free_ports 13 22700)"
export POP_PORT=${PORTS[0]}
export EDGE_PORTS="${PORTS[1]} ${PORTS[2]}"
export BACKEND_PORTS="${PORTS[3]} ${PORTS[4]}"
REDIS=("${PORTS[@]:5:6}")
export REDIS_PORTS="${REDIS[*]}"
export MYSQL_PRIMARY=${PORTS[11]} MYSQL_REPLICA=${PORTS[12]}
export CLUSTER_NODE_TIMEOUT_MS=2000 FLEET_WAIT_REPLICAS=0
read -r -a EDGES <<<"$EDGE_PORTS"
read -r -a BACKENDS <<<"$BACKEND_PORTS"

cleanup() {
  local rc=$?
  scripts/fleet down >/dev/null 2>&1 || true
  if [ $rc -ne 0 ] || [ -n "${KEEP_FLEET_LOGS:-}" ]; then say "logs are kept in $F"; else rm -rf "$F"; fi
  exit $rc
}
trap cleanup EXIT INT TERM

cargo build --release --quiet --workspace
scripts/fleet >"$F/fleet-up.log" 2>&1 || { tail -30 "$F/fleet-up.log"; die "the fleet did not come up"; }
say "fleet up: POP $POP_PORT, edges ${EDGES[*]}, backends ${BACKENDS[*]}, redis ${REDIS[*]}, mariadb $MYSQL_PRIMARY/$MYSQL_REPLICA"

FAILED=0
fail() { echo "FAIL: $*"; FAILED=1; }
pass() { echo "ok: $*"; }
# j FILE EXPR: a field of a crowd's JSON line.
j() { python3 -c "import json,sys; d=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(eval(sys.argv[2], dict(d=d)))" "$1" "$2"; }

url_list() { local p out=""; for p in "$@"; do out+="http://127.0.0.1:$p,"; done; echo "${out%,}"; }
# crowd NAME ARGS...: a crowd through the POP in the background; its JSON line goes to
# $F/NAME.json, its progress to $F/NAME.err.
crowd() {
  local name=$1; shift
  "$TARGET/release/crowd" --var "$F" --edge "http://127.0.0.1:$POP_PORT" \
    --admin "http://127.0.0.1:${EDGES[0]}" --edge-metrics "$(url_list "${EDGES[@]}")" \
    --backend "$(url_list "${BACKENDS[@]}")" --report "$F/crowd" --cheaters 0 "$@" \
    >"$F/$name.json" 2>"$F/$name.err" &
  CROWD_PID=$!
}
# sale_of NAME: the sale id the crowd created (waits for it).
sale_of() {
  local i
  for ((i = 0; i < 300; i++)); do
    grep -o 'crowd: sale [0-9]*' "$F/$1.err" 2>/dev/null | head -1 | awk '{print $3}' | grep . && return 0
    sleep 0.1
  done
  die "crowd $1 did not create its sale"
}
crowd_wait() { wait "$CROWD_PID" || true; [ -s "$F/$1.json" ] || { tail -5 "$F/$1.err"; die "crowd $1 printed nothing"; }; }
cli() { # cli ARGS...: asks the first Redis node that answers (one may be dead)
  local p
  for p in "${REDIS[@]}"; do
    redis-cli -p "$p" PING 2>/dev/null | grep -q PONG && { redis-cli -p "$p" "$@"; return; }
  done
  return 1
}
# master_of SALE: the port of the Redis master that owns the sale's slot.
master_of() {
  local slot
  slot=$(cli CLUSTER KEYSLOT "{sale:$1}")
  cli CLUSTER NODES | awk -v s="$slot" '$3 ~ /master/ && $3 !~ /fail/ {
      for (i = 9; i <= NF; i++) { n = split($i, r, "-"); lo = r[1]; hi = (n == 2 ? r[2] : r[1]);
        if (s >= lo && s <= hi) { split($2, a, "[:@]"); print a[2]; exit } } }'
}
metric_sum() { # metric_sum NAME: summed over both backends
  local p total=0 v
  for p in "${BACKENDS[@]}"; do
    v=$(curl -fsS "http://127.0.0.1:$p/metrics" 2>/dev/null | awk -v m="$1" '$1 == m {print $2}' | head -1)
    total=$(python3 -c "print(int(float('${v:-0}')) + $total)")
  done
  echo "$total"
}
sql() { mariadb_admin "$F/mariadb-primary" -N -B seckill -e "$1"; }
# kill_master NAME: kills -9 the master of NAME's sale 4 s into the sale; restarts it (it
# rejoins as a replica) once the crowd is over. Sets KILLED, KILL_MS.
kill_master_mid_crowd() {
  local name=$1 sale
  sale=$(sale_of "$name")
  sleep 7 # 3 s to the start, then 4 s into the sale
  KILLED=$(master_of "$sale")
  [ -n "$KILLED" ] || die "no master found for sale $sale"
  KILL_MS=$(date +%s%3N)
  say "$name: kill -9 of redis master $KILLED (owns sale $sale)"
  kill -9 "$(cat "$F/redis/$KILLED/redis.pid")"
  # A supervisor restarts it once the Cluster has promoted its replica: it rejoins as that
  # replica's replica (restarted sooner, it would come back as the master with its AOF).
  local i
  for ((i = 0; i < 300; i++)); do
    [ "$(master_of "$sale")" != "$KILLED" ] && [ -n "$(master_of "$sale")" ] && break
    sleep 0.1
  done
  echo "$name: the Cluster promoted $(master_of "$sale") after $(($(date +%s%3N) - KILL_MS)) ms"
  start_redis "$F/redis/$KILLED" "$KILLED" --cluster-enabled yes \
    --cluster-config-file "$F/redis/$KILLED/nodes.conf" --cluster-node-timeout "$CLUSTER_NODE_TIMEOUT_MS" \
    --repl-diskless-sync-delay 0 >/dev/null
  wait_for 30 "redis $KILLED back as a replica" bash -c \
    "redis-cli -p $KILLED info replication | grep -q master_link_status:up"
  crowd_wait "$name"
  SALE=$sale
}
# failover_seen NAME SALE REBUILT_BEFORE: the killed master's slots went to its replica, a
# backend detected the new primary and rebuilt the sales from MariaDB (a recovery: through
# NOSCRIPT, or the topology watcher's flush), and orders were taken after the failover.
failover_seen() {
  local name=$1 sale=$2 before=$3 now_master detected resumed
  now_master=$(master_of "$sale")
  detected=$(metric_sum 'seckill_recoveries_total{result="ok"}')
  resumed=$(sql "SELECT COUNT(*) FROM orders WHERE sale_id = $sale AND queued_ms > $KILL_MS + $CLUSTER_NODE_TIMEOUT_MS")
  echo "$name: sale now on master $now_master (was $KILLED); recoveries $before -> $detected (watcher flushes $(metric_sum seckill_redis_failovers_detected_total)); orders after the failover $resumed"
  [ "$now_master" != "$KILLED" ] && [ "$detected" -gt "$before" ] && [ "$resumed" -gt 0 ]
}
invariants() { # invariants NAME: exact, one per user, none oversold, drift 0
  local f="$F/$1.json"
  [ "$(j "$f" "d['oversold']")" = 0 ] || fail "$1: oversold $(j "$f" "d['oversold']")"
  [ "$(j "$f" "d['duplicate_buyers']")" = 0 ] || fail "$1: duplicate buyers"
  [ "$(j "$f" "d['drift']")" = 0 ] || fail "$1: drift $(j "$f" "d['drift']")"
  [ "$(j "$f" "d['orders_in_db'] == d['sold']")" = True ] || fail "$1: MariaDB orders != sold"
}
fivexx() { j "$F/$1.json" "sum(v for k, v in d['outcomes'].items() if k == 'no_answer' or int(k) >= 500)"; }
OVERSOLD=0 DRIFT=0
tally() {
  OVERSOLD=$((OVERSOLD + $(j "$F/$1.json" "d['oversold']")))
  DRIFT=$((DRIFT + $(j "$F/$1.json" "abs(d['drift'])")))
  echo "$1: $(j "$F/$1.json" "{k: d[k] for k in ('stock','sold','orders_in_db','queued_answers','queued_lost','oversold','duplicate_buyers','drift','edges_served','backends_served','outcomes')}")"
}

# 1. A crowd through the POP.
say "1/8 a crowd through the POP"
crowd plain --users 8000 --stock 400 --concurrency 256
crowd_wait plain
tally plain
invariants plain
[ "$(j "$F/plain.json" "d['queued_lost']")" = 0 ] || fail "plain: queued answers lost"
EDGES_SERVED=$(j "$F/plain.json" "sum(1 for x in d['edges_served'] if x)")
BACKENDS_SERVED=$(j "$F/plain.json" "sum(1 for x in d['backends_served'] if x)")
[ "$EDGES_SERVED" = 2 ] && [ "$BACKENDS_SERVED" = 2 ] && pass "both edges and both backends served" ||
  fail "edges served $EDGES_SERVED, backends served $BACKENDS_SERVED (want 2 and 2)"

# master_kill NAME: a crowd whose sale's Redis master is killed (kill_master_mid_crowd), its
# invariants, and whether the failover completed (FAILOVER false otherwise); sets LOST.
master_kill() {
  local name=$1 before
  before=$(metric_sum 'seckill_recoveries_total{result="ok"}')
  crowd "$name" --users 32000 --stock 32000 --rate 2000 --duration 16 --concurrency 512 --retry 0
  kill_master_mid_crowd "$name"
  tally "$name"
  invariants "$name"
  LOST=$(j "$F/$name.json" "d['queued_lost']")
  failover_seen "$name" "$SALE" "$before" || { FAILOVER=false; fail "$name: failover not completed"; }
}
FAILOVER=true

# 2. Kill the sale's master, WAIT off.
say "2/8 kill -9 of the sale's Redis master mid-crowd, WAIT off"
master_kill nowait
LOST_NOWAIT=$LOST
echo "nowait: queued answers lost in the failover (the documented window): $LOST_NOWAIT"

# 3. Rolling restart of both backends (WAIT on from now) and edge reloads, mid-crowd.
say "3/8 rolling restart of both backends and reloads of both edges mid-crowd"
crowd roll --users 24000 --stock 24000 --rate 1200 --duration 20 --concurrency 512 --retry 0
sale_of roll >/dev/null
sleep 5
FLEET_WAIT_REPLICAS=1 scripts/fleet roll >"$F/roll.log" 2>&1 || { tail "$F/roll.log"; fail "roll: scripts/fleet roll failed"; }
crowd_wait roll
tally roll
invariants roll
ROLL_FAILED=$(fivexx roll)
[ "$ROLL_FAILED" = 0 ] && pass "roll: zero failed requests" || fail "roll: $ROLL_FAILED failed requests (5xx or no answer)"
for p in "${BACKENDS[@]}"; do
  curl -fsS "http://127.0.0.1:$p/metrics" >/dev/null || fail "roll: backend $p not back"
done
grep -q '^SECKILL_REDIS_WAIT_REPLICAS=1' "$F/backend-0.env" || fail "roll: WAIT not switched on"

# 4. Kill the sale's master, WAIT on.
say "4/8 kill -9 of the sale's Redis master mid-crowd, WAIT on"
master_kill wait
LOST_WAIT=$LOST
[ "$LOST_WAIT" = 0 ] && pass "wait: no queued answer lost" || fail "wait: $LOST_WAIT queued answers lost with WAIT on"

# 5. Kill a backend.
say "5/8 kill -9 of one backend mid-crowd"
crowd backend --users 16000 --stock 16000 --rate 2000 --duration 8 --concurrency 512 --retry 0
sale_of backend >/dev/null
sleep 6
say "backend: kill -9 of backend 0 (${BACKENDS[0]})"
kill -9 "$(cat "$F/run/backend-0.pid")"
crowd_wait backend
tally backend
invariants backend
[ "$(j "$F/backend.json" "d['queued_lost']")" = 0 ] || fail "backend: queued answers lost"
[ "$(j "$F/backend.json" "d['undrained']")" = 0 ] || fail "backend: entries left undrained"
echo "backend: 5xx or no answer: $(fivexx backend) of $(j "$F/backend.json" "d['requests']") requests"
FLEET_WAIT_REPLICAS=1 scripts/fleet >"$F/fleet-up2.log" 2>&1 || die "the fleet did not come back"

# 6. Kill an edge.
say "6/8 kill -9 of one edge mid-crowd"
crowd edge --users 16000 --stock 16000 --rate 2000 --duration 8 --concurrency 512 --retry 0
sale_of edge >/dev/null
sleep 6
master=$(cat "$F/edge-1/nginx/nginx.pid")
say "edge: kill -9 of edge 1 (${EDGES[1]}) and its workers"
kill -9 $(pgrep -P "$master") "$master"
crowd_wait edge
tally edge
invariants edge
EDGE_5XX=$(fivexx edge)
EDGE_REQ=$(j "$F/edge.json" "d['requests']")
echo "edge: 5xx or no answer: $EDGE_5XX of $EDGE_REQ requests"
[ $((EDGE_5XX * 100)) -le "$EDGE_REQ" ] && pass "edge: no 5xx storm (<= 1%)" || fail "edge: $EDGE_5XX failed of $EDGE_REQ"
[ "$(j "$F/edge.json" "d['queued_lost']")" = 0 ] || fail "edge: queued answers lost"
rm -f "$F/edge-1/nginx/nginx.pid"
FLEET_WAIT_REPLICAS=1 scripts/fleet >"$F/fleet-up3.log" 2>&1 || die "the fleet did not come back"

# 7. The MariaDB replica.
say "7/8 the MariaDB replica holds the primary's orders"
pos=$(sql "SELECT @@gtid_binlog_pos")
replica() { mariadb_admin "$F/mariadb-replica" -N -B seckill -e "$1"; }
[ "$(replica "SELECT MASTER_GTID_WAIT('$pos', 60)")" = 0 ] || fail "replica: did not reach $pos in 60 s"
digest="SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS(',', id, sale_id, seq, user_id, status))), 0) FROM orders"
P=$(sql "$digest"); R=$(replica "$digest")
echo "orders primary: $P; replica: $R"
[ "$P" = "$R" ] && pass "replica: same orders" || fail "replica: differs from the primary"
MARIADB_REPLICAS=$(mariadb_admin "$F/mariadb-replica" -e "SHOW SLAVE STATUS\G" |
  grep -c 'Slave_SQL_Running: Yes' || true)

# 8. WAIT's cost on this Cluster: the backend's reserver, batched, without and with WAIT 1.
say "8/8 WAIT's cost on the fleet's Cluster"
seeds=$(printf '127.0.0.1:%s,' "${REDIS[@]}")
read -r nowait_rate _ < <("$TARGET/release/benchkit" reserve-rate "${seeds%,}" 990001 100000 512 128)
read -r wait_rate _ < <("$TARGET/release/benchkit" reserve-rate "${seeds%,}" 990002 100000 512 128 1)
WAIT_COST=$(python3 -c "print(round($wait_rate / $nowait_rate, 2))")
echo "reserver on the Cluster: $nowait_rate/s without WAIT, $wait_rate/s with WAIT 1: ratio $WAIT_COST"

MASTERS=$(cli CLUSTER NODES | awk '$3 ~ /master/ && $3 !~ /fail/ && NF > 8' | wc -l)
REPLICAS=$(cli CLUSTER NODES | awk '$3 ~ /slave/ && $3 !~ /fail/ && $8 == "connected"' | wc -l)
[ "$FAILED" = 0 ] && say "fleet suite: all checks passed" || say "fleet suite: some checks FAILED"
printf '{"edges": %s, "backends": %s, "redis_masters": %s, "redis_replicas": %s, "mariadb_replicas": %s, "failover": %s, "queued_lost_with_wait": %s, "queued_lost_without_wait": %s, "oversold": %s, "drift": %s, "wait_cost_ratio": %s}\n' \
  "$EDGES_SERVED" "$BACKENDS_SERVED" "$MASTERS" "$REPLICAS" "$MARIADB_REPLICAS" "$FAILOVER" \
  "$LOST_WAIT" "$LOST_NOWAIT" "$OVERSOLD" "$DRIFT" "$WAIT_COST"
exit "$FAILED"
