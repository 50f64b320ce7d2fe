# shellcheck shell=bash
# Shared shell functions for scripts/up, scripts/down and scripts/test. Source it; do not run.
# Every server is started as a plain process on 127.0.0.1, with its data, logs and pid file
# under a directory the caller chooses (var/ for the stack, a temp dir for tests). Every path
# is quoted: a checkout may live anywhere, spaces included (tests/up_anywhere.sh).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Where cargo puts the builds (CARGO_TARGET_DIR, else target/ in the checkout); the scripts
# that source this file run what is there.
# shellcheck disable=SC2034
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
PACKAGES=(nginx libnginx-mod-http-lua lua-resty-core redis-server redis-tools
          mariadb-server mariadb-client curl jq python3)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs the Debian packages that are missing (never the `luajit` package: it removes
# nginx's Lua module; the Lua tests use `luajit2`).
ensure_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}" "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# free_ports COUNT [MAX]: COUNT distinct TCP ports on 127.0.0.1 in 20000..MAX (default 22700)
# that are free now, and whose +10000 (a Redis Cluster bus port) is too. Both stay below the
# kernel's ephemeral range (32768 up): a port free now could otherwise be taken by an outgoing
# connection before its server binds it (seen on a busy machine: "Failed listening").
free_ports() {
  python3 - "$1" "${2:-22700}" <<'PY'
import random, socket, sys
count, top = int(sys.argv[1]), int(sys.argv[2])
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
ports = []
while len(ports) < count:
    p = random.randint(20000, top)
    # Neither this port nor its bus port may be a port or a bus port already chosen.
    if (p not in ports and p + 10000 not in ports and p - 10000 not in ports
            and free(p) and free(p + 10000)):
        ports.append(p)
print(*ports)
PY
}

# A TCP port on 127.0.0.1 that is free now (and, for Redis Cluster, whose +10000 bus port is too).
free_port() { free_ports 1; }

# wait_for [--log FILE] SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds; else dies in
# one line naming what failed, the last line of its log and where to read the rest.
wait_for() {
  local log=""
  if [ "$1" = --log ]; then log=$2; shift 2; fi
  local secs=$1 what=$2; shift 2
  local i
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  [ -n "$log" ] || die "$what did not come up within ${secs}s"
  die "$what did not come up within ${secs}s: $(last_log_line "$log") (read $log)"
}

# last_log_line FILE: the file's last non-empty line (or a note that there is none).
last_log_line() {
  local line
  line=$(grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -1)
  printf '%s' "${line:-its log is empty}"
}

# running PID: alive and not a zombie (a daemon whose parent is gone may wait to be reaped).
running() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
pid_alive() { [ -f "$1" ] && running "$(cat "$1")"; }

# stop_pidfile FILE NAME: SIGTERM (repeated every 5 s), wait up to 30 s, then SIGKILL.
stop_pidfile() {
  local file=$1 name=$2 pid i
  pid_alive "$file" || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 1; i <= 300; i++)); do
    running "$pid" || { rm -f "$file"; return 0; }
    sleep 0.1
    # Again every 5 s: redis-server 7.0 can drop a SIGTERM that lands as an AOF rewrite ends
    # ("User requested shutdown...", then nothing; seen after a replica's promotion).
    if ((i % 50 == 0)); then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  say "$name did not stop in 30s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$file"
}

# on_host NAME: sets ON_HOST to the command prefix that runs a command on the simulated host
# NAME when the fleet runs on hosts (FLEET_HOSTS: the hosts' directory, from scripts/hosts:
# NAME's cgroup and network namespace), so that it and every process it forks live there;
# empty otherwise. Used as `"${ON_HOST[@]}" COMMAND...`: the prefix execs COMMAND, so `$!` is
# still its pid.
on_host() {
  ON_HOST=()
  if [ -n "${FLEET_HOSTS:-}" ]; then
    # shellcheck disable=SC2016 # $$ and $@ are the inner shell's
    ON_HOST=(sh -c 'echo $$ >"$0/cgroup.procs" && n=$1 && shift && exec nsenter --net="$n" "$@"'
      "$(cat "$FLEET_HOSTS/cgroup")/$1" "/run/netns/$(cat "$FLEET_HOSTS/netns")-$1")
  fi
}

# start_redis DIR PORT [extra redis-server arguments]: TCP on 127.0.0.1:PORT, and the Unix
# socket DIR/redis.sock (mode 700: this user only) for a backend on the same host.
start_redis() {
  local dir=$1 port=$2; shift 2
  mkdir -p "$dir"
  if pid_alive "$dir/redis.pid"; then say "redis on $port already running"; return 0; fi
  say "starting redis on 127.0.0.1:$port ($dir)"
  on_host "redis-$port"
  "${ON_HOST[@]}" redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save "" \
    --unixsocket "$dir/redis.sock" --unixsocketperm 700 \
    --appendonly yes --appendfsync everysec --protected-mode no "$@"
  # Ready means PONG: a Redis loading its AOF answers LOADING (and redis-cli exits 0).
  wait_for --log "$dir/redis.log" 120 "redis on $port" redis_ready "$port"
}

redis_ready() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }

# start_redis_cluster DIR PORT...: masters with the slots spread over them; with
# CLUSTER_REPLICAS=1 (and twice the ports) each master gets a replica. CLUSTER_NODE_TIMEOUT_MS
# (5000) is how long a master may be silent before its replica takes over. Safe to run again
# on a cluster that is up.
start_redis_cluster() {
  local dir=$1; shift
  local p nodes=()
  for p in "$@"; do
    start_redis "$dir/$p" "$p" --cluster-enabled yes --cluster-config-file "$dir/$p/nodes.conf" \
      --cluster-node-timeout "${CLUSTER_NODE_TIMEOUT_MS:-5000}" --repl-diskless-sync-delay 0
    nodes+=("127.0.0.1:$p")
  done
  if redis-cli -p "$1" cluster info 2>/dev/null | grep -q cluster_state:ok; then
    say "redis cluster of ${nodes[*]} already formed"
    return 0
  fi
  say "creating a redis cluster of ${nodes[*]}"
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas "${CLUSTER_REPLICAS:-0}" \
    --cluster-yes >"$dir/create.log" 2>&1 \
    || { cat "$dir/create.log" >&2; die "redis cluster create failed"; }
  wait_for 20 "redis cluster" bash -c "redis-cli -p $1 cluster info | grep -q cluster_state:ok"
}

# start_mariadb DIR PORT DATABASE USER PASSWORD: initialises DIR on first use, starts mariadbd
# with durable InnoDB settings, and creates the database and a TCP user for the backend.
start_mariadb() {
  local dir=$1 port=$2 db=$3 user=$4 pass=$5
  shift 5 # the rest: extra mariadbd options (binlog, server id, read-only for a replica)
  mkdir -p "$dir"
  if ! pid_alive "$dir/mariadb.pid"; then
    if [ ! -d "$dir/data/mysql" ]; then
      say "initialising mariadb data in $dir/data"
      # No --user: mariadb-install-db's own chown of the datadir breaks on a path with a
      # space, and the files are ours already (we run mariadbd as ourselves).
      mariadb-install-db --no-defaults --datadir="$dir/data" \
        --auth-root-authentication-method=socket --skip-test-db >"$dir/install.log" 2>&1 \
        || die "mariadb-install-db failed: $(tail -1 "$dir/install.log") (read $dir/install.log)"
    fi
    say "starting mariadb on 127.0.0.1:$port ($dir)"
    # setsid: a Ctrl-C in the calling terminal must not reach the database.
    # --user names ourselves: as root mariadbd insists on it, as anyone else it is a no-op.
    on_host "${dir##*/}"
    "${ON_HOST[@]}" setsid mariadbd --no-defaults --datadir="$dir/data" --user="$(id -un)" \
      --bind-address=127.0.0.1 --port="$port" --socket="$dir/mariadb.sock" \
      --pid-file="$dir/mariadb.pid" --log-error="$dir/mariadb.err" \
      --innodb-flush-log-at-trx-commit=1 --innodb-buffer-pool-size=512M \
      --innodb-log-file-size=512M --max-connections=1000 --skip-name-resolve \
      --character-set-server=utf8mb4 "$@" </dev/null >/dev/null 2>&1 &
    wait_for --log "$dir/mariadb.err" 60 "mariadb on $port" mariadb_admin "$dir" -e 'SELECT 1'
  else
    say "mariadb on $port already running"
  fi
  mariadb_admin "$dir" <<SQL
CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS '$user'@'127.0.0.1' IDENTIFIED BY '$pass';
CREATE USER IF NOT EXISTS '$user'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL ON \`$db\`.* TO '$user'@'127.0.0.1';
GRANT ALL ON \`$db\`.* TO '$user'@'localhost';
SQL
}

# mariadb_admin DIR [mariadb arguments]: the server's administrator over its socket. Socket
# authentication: mariadb-install-db gave that right to root and to the user who ran it.
mariadb_admin() {
  local dir=$1; shift
  mariadb --no-defaults -S "$dir/mariadb.sock" -u "$(id -un)" "$@"
}

# random_secret FILE: 32 random bytes as hex, written once.
random_secret() {
  [ -s "$1" ] && return 0
  # Only the secret is private: the umask must not leak into the caller (nginx's workers,
  # running as nobody, read the web root and write the POP cache created later).
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1")
}

# sed_text TEXT: TEXT escaped for the replacement side of a sed s### command.
sed_text() { printf '%s' "$1" | sed -e 's/[\\#&]/\\&/g'; }

# var_paths VARDIR: sed expressions that move a config's var/ paths to VARDIR, quoted (a path
# may hold spaces): "var/x" inside quotes and a bare var/x token alike.
var_paths() {
  local v
  v=$(sed_text "$1")
  printf '%s\n' "-e" "s#\"var/#\"$v/#g" \
    "-e" "s#\\([[:space:]]\\)var/\\([^[:space:];\"]*\\)#\\1\"$v/\\2\"#g"
}

# nginx_user VARDIR: the `user` line for a config whose master runs as root. Workers stay the
# unprivileged `nobody` when it can reach the checkout and VARDIR (Lua, pages, sockets, the
# cache); under a directory it cannot enter (root's home, a `mktemp -d`, both mode 0700) they
# run as the checkout's owner instead. Not root: nothing (workers run as the caller).
nginx_user() {
  [ "$(id -u)" -eq 0 ] || return 0
  if runuser -u nobody -- test -r "$ROOT/edge/lua/seckill/gate.lua" -a -x "$1" 2>/dev/null; then
    echo "user nobody nogroup;"
  else
    echo "user $(stat -c '%U %G' "$ROOT");"
  fi
}

# render_nginx OUT EDGE_PORT BACKEND_PORT VARDIR [bench]: nginx.conf with its ports and var/
# moved; with "bench", scripts/bench's baseline upstream and locations included too.
# With BACKEND_SOCKET set, the edge reaches the backend on that Unix socket instead of TCP.
render_nginx() {
  local out=$1 edge=$2 backend=$3 var=$4 bench=() hop=() vars=()
  if [ -n "${BACKEND_SOCKET:-}" ]; then
    hop=(-e "s#server 127.0.0.1:$backend;#server \"unix:$(sed_text "$BACKEND_SOCKET")\";#")
  fi
  if [ "${5:-}" = bench ]; then
    bench=(-e "s|# @bench-http@.*|include \"$(sed_text "$ROOT")/bench/nginx-http.conf\";|"
           -e "s|# @bench-server@.*|include \"$(sed_text "$ROOT")/bench/nginx-server.conf\";|")
  fi
  mapfile -t vars < <(var_paths "$var")
  sed -e "s#127.0.0.1:8080#127.0.0.1:$edge#g" \
      -e "s#127.0.0.1:8081#127.0.0.1:$backend#g" \
      -e "s#127.0.0.1:9090#127.0.0.1:${PROM_PORT:-9090}#g" \
      -e "s#^worker_processes .*#$(nginx_user "$var")\n&#" \
      "${vars[@]}" "${bench[@]}" "${hop[@]}" "$ROOT/nginx.conf" >"$out"
}

# render_pop OUT POP_PORT EDGE_PORT VARDIR: the CDN POP config with its ports and var/ moved.
render_pop() {
  local out=$1 pop=$2 edge=$3 var=$4 vars=()
  mapfile -t vars < <(var_paths "$var")
  sed -e "s#127.0.0.1:8090#127.0.0.1:$pop#g" \
      -e "s#127.0.0.1:8080#127.0.0.1:$edge#g" \
      -e "s#^worker_processes .*#$(nginx_user "$var")\n&#" \
      "${vars[@]}" "$ROOT/cdn/pop.conf" >"$out"
}

# start_nginx_as NAME CONF PIDDIR ERRORLOG: one nginx with the repo as its prefix (for edge/lua
# and static/), its pid under PIDDIR; if it runs already, its configuration is reloaded.
start_nginx_as() {
  local name=$1 conf=$2 piddir=$3 log=$4
  mkdir -p "$piddir" "$(dirname "$log")"
  if pid_alive "$piddir/nginx.pid"; then
    say "$name already running; reloading its configuration"
    nginx -p "$ROOT/" -c "$conf" -e "$log" -s reload 2>>"$log" \
      || die "$name: reloading failed: $(last_log_line "$log") (read $log)"
    return 0
  fi
  say "starting $name ($conf)"
  local from
  from=$(stat -c %s "$log" 2>/dev/null || echo 0)
  nginx -p "$ROOT/" -c "$conf" -e "$log" -t -q 2>>"$log" \
    || die "$name: its configuration is refused: $(first_error "$log" "$from") (read $log)"
  on_host "${NGINX_HOST:-nginx}"
  "${ON_HOST[@]}" nginx -p "$ROOT/" -c "$conf" -e "$log" 2>>"$log" \
    || die "$name did not start: $(first_error "$log" "$from") (read $log)"
}

# first_error LOG OFFSET: the first emergency or error nginx logged past OFFSET bytes (the
# cause; later lines repeat it), else the log's last line.
first_error() {
  local line
  line=$(tail -c +"$(($2 + 1))" "$1" 2>/dev/null | grep -m1 -E '\[(emerg|alert|crit|error)\]' || true)
  printf '%s' "${line:-$(last_log_line "$1")}"
}

# start_nginx CONF VARDIR: the edge (pid under VARDIR/nginx).
start_nginx() { start_nginx_as nginx "$1" "$2/nginx" "$2/log/nginx-error.log"; }

# start_pop CONF VARDIR: the CDN POP, an nginx of its own (pid under VARDIR/cdn).
start_pop() { start_nginx_as "the CDN POP" "$1" "$2/cdn" "$2/log/cdn-error.log"; }

# The stack a tool works on: scripts/up writes its addresses to var/stack.env (a KEY=VALUE a
# line, values unquoted); the suite writes one for its throwaway stack. SECKILL_VAR names
# another stack's directory. Every key is set from the file unless the environment has it
# already (so `EDGE=... scripts/bench` still wins), then the defaults of docs/DESIGN.md.
STACK_KEYS=(EDGE BACKEND POP PROMETHEUS REDIS_URL REDIS_PORT MYSQL_URL SECRETS ADMIN_TOKEN_FILE
            BACKEND_SOCKET BACKEND_PID_FILE NGINX_CONF NGINX_ERROR_LOG MARIADB_DIR REDIS_DIR PUBLIC_DIR)
load_stack() {
  STACK_VAR=${SECKILL_VAR:-$ROOT/var}
  local file="$STACK_VAR/stack.env" k v
  if [ -r "$file" ]; then
    while IFS='=' read -r k v; do
      [[ " ${STACK_KEYS[*]} " == *" $k "* ]] || continue
      [ -n "${!k:-}" ] || printf -v "$k" '%s' "$v"
    done <"$file"
  fi
  EDGE=${EDGE:-http://127.0.0.1:8080}
  BACKEND=${BACKEND:-http://127.0.0.1:8081}
  POP=${POP:-http://127.0.0.1:8090}
  REDIS_PORT=${REDIS_PORT:-16379}
  REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}
  SECRETS=${SECRETS:-$STACK_VAR/secrets}
  ADMIN_TOKEN_FILE=${ADMIN_TOKEN_FILE:-$STACK_VAR/admin.token}
  BACKEND_PID_FILE=${BACKEND_PID_FILE:-$STACK_VAR/run/seckill.pid}
  NGINX_CONF=${NGINX_CONF:-$STACK_VAR/nginx.conf}
  NGINX_ERROR_LOG=${NGINX_ERROR_LOG:-$STACK_VAR/log/nginx-error.log}
  MARIADB_DIR=${MARIADB_DIR:-$STACK_VAR/mariadb}
  PUBLIC_DIR=${PUBLIC_DIR:-$STACK_VAR/public}
  export STACK_VAR "${STACK_KEYS[@]}"
}

# write_stack FILE KEY=VALUE...: the stack's addresses for the tools (see load_stack).
write_stack() {
  local file=$1; shift
  (umask 077 && printf '%s\n' "# The stack's addresses, for scripts/* (lib.sh load_stack)." "$@" >"$file")
}
