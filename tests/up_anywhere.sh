#!/usr/bin/env bash
# scripts/up works wherever a new user puts the checkout (issue 26): the repository is cloned
# into a directory of mode 0700 (as root's home and every `mktemp -d` are) whose path holds a
# space, and there, on free ports:
#   1. a start that cannot finish (the edge's port is taken) fails in one line naming the
#      component and its log, and leaves nothing it started running;
#   2. scripts/up brings the stack up; one unit is bought through the CDN POP (scripts/crowd:
#      sold 1, one row in MariaDB, no drift); var/ keeps its secrets to this user;
#   3. scripts/down stops everything: no process of the clone is left.
# Reuses the suite's debug build (CARGO_TARGET_DIR; only the seckill crate is rebuilt for the
# clone's path). Usage: tests/up_anywhere.sh   (run by scripts/test)
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

BASE=$(mktemp -d /tmp/seckill-anywhere.XXXXXX)
chmod 700 "$BASE"
CLONE="$BASE/my checkout/seckill"
mkdir -p "$(dirname "$CLONE")"
git clone --quiet "$ROOT" "$CLONE"
export CARGO_TARGET_DIR="$TARGET" SECKILL_PROFILE=debug
(cd "$ROOT" && cargo build --quiet -p crowd)
read -r EDGE_PORT BACKEND_PORT POP_PORT REDIS_PORT MYSQL_PORT <<<"$(free_ports 5)"
export EDGE_PORT BACKEND_PORT POP_PORT REDIS_PORT MYSQL_PORT
failures=0
check() { # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok   $1"; else echo "FAIL $1"; failures=$((failures + 1)); fi
}
# Every pid file under the clone's var/ whose process still runs.
alive() {
  local f
  while IFS= read -r -d '' f; do
    pid_alive "$f" && echo "$f"
  done < <(find "$CLONE/var" -name '*.pid' -print0 2>/dev/null)
  return 0
}
cleanup() {
  local rc=$?
  (cd "$CLONE" && scripts/down >/dev/null 2>&1) || true
  [ -n "${blocker:-}" ] && kill "$blocker" 2>/dev/null
  if [ $rc -eq 0 ]; then rm -rf "$BASE"; else say "up_anywhere: failed; the clone is kept in $BASE"; fi
  exit $rc
}
trap cleanup EXIT INT TERM

say "up_anywhere: a failed start (the edge's port $EDGE_PORT is taken)"
python3 -c 'import socket,sys,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); time.sleep(600)' "$EDGE_PORT" &
blocker=$!
sleep 0.3
set +e
(cd "$CLONE" && timeout 600 scripts/up) >"$BASE/up-fail.out" 2>&1
rc=$?
set -e
kill "$blocker" 2>/dev/null; wait "$blocker" 2>/dev/null || true; blocker=""
last=$(grep '^error:' "$BASE/up-fail.out" | tail -1 || true)
echo "     scripts/up said: $last"
check "a failed start exits non-zero" test "$rc" -ne 0
check "its error names the edge and the log to read" grep -q '^error: nginx.*(read .*nginx-error.log)' <<<"$last"
check "its error is one line, not a bare curl: (22)" test "$(grep -c '^error:' "$BASE/up-fail.out")" -eq 1
left=$(alive)
check "nothing it started is left running ($left)" test -z "$left"

say "up_anywhere: scripts/up in $CLONE (mode 0700 above it, a space in the path)"
(cd "$CLONE" && timeout 600 scripts/up) >"$BASE/up.out" 2>&1 || { tail -20 "$BASE/up.out"; die "scripts/up failed in $CLONE"; }
check "the shop's address is printed" grep -q "http://127.0.0.1:$POP_PORT/sales/" "$BASE/up.out"
check "the POP serves the API" curl -fsS -o /dev/null "http://127.0.0.1:$POP_PORT/api/time"
check "the edge reaches the backend through its socket" curl -fsS -o /dev/null \
  "http://127.0.0.1:$EDGE_PORT/api/sales/$(cat "$CLONE/var/demo_sale_id")"
check "the demo sale's page is published behind the POP" curl -fsS -o /dev/null \
  "http://127.0.0.1:$POP_PORT/sales/$(cat "$CLONE/var/demo_sale_id")/"
for f in "$CLONE"/var/secrets/* "$CLONE/var/admin.token" "$CLONE/var/seckill.env"; do
  check "$(basename "$f") is readable by its owner only" test "$(stat -c %a "$f")" = 600
done

say "up_anywhere: one unit bought through the POP"
CROWD_BIN="$TARGET/debug/crowd" "$CLONE/scripts/crowd" --users 20 --stock 1 --concurrency 8 \
  --quiet --start-in 2000 --edge "http://127.0.0.1:$POP_PORT" --admin "http://127.0.0.1:$EDGE_PORT" \
  --backend "http://127.0.0.1:$BACKEND_PORT" --var "$CLONE/var" >"$BASE/crowd.out" 2>&1 \
  || { tail -5 "$BASE/crowd.out"; die "the crowd through the POP failed"; }
line=$(tail -1 "$BASE/crowd.out")
echo "     $line" | cut -c1-200
check "one unit sold, one order in MariaDB, no drift" jq -e \
  '.sold == 1 and .orders_in_db == 1 and .oversold == 0 and .drift == 0 and .queued_lost == 0' \
  <<<"$line" >/dev/null

say "up_anywhere: scripts/down"
(cd "$CLONE" && scripts/down) >"$BASE/down.out" 2>&1
left=$(alive)
check "scripts/down left nothing running ($left)" test -z "$left"
check "no process runs from the clone" test -z "$(pgrep -f "$CLONE" || true)"

[ "$failures" -eq 0 ] || die "up_anywhere: $failures check(s) failed"
say "up_anywhere: passed"
