#!/usr/bin/env bash
# Import and profile processing with 1, 2 and 3 `tributary serve` nodes on one PostgreSQL, and
# the same with one node on SQLite:
#
#   bench/cluster.sh                                  # N = 100,000 records of ~1 KiB, 8 shards
#   BENCH_NODES="1 3" BENCH_RECORDS=20000 bench/cluster.sh
#
# For each run: a fresh database (or data directory), N release nodes started against it
# (`--store postgres://… --lease-timeout …`, one shared API token and master key), then
#   import    an import job created over node 1's API, until its events_out == N (the shards'
#             leases spread the reading over the nodes);
#   profiles  a mapping for the stream and 10 audiences, then POST /api/profiles/rebuild, until
#             the rebuild is done (N events through the profile processor, which runs on one
#             node at a time: where its lease is).
# Each phase prints records/s (wall) and CPU seconds per million records: Tributary's (every
# node's process) and PostgreSQL's (the connections to the bench database, plus the server's
# own processes: WAL writer, checkpointer, background writer, autovacuum; on a shared server
# those also work for other databases).
#
# The stream is filled once (kinesalite, in memory) and every run reads it from the start.
# Settings (environment): BENCH_RECORDS (100000), BENCH_SHARDS (8), BENCH_NODES ("1 2 3"),
# BENCH_SQLITE (1: also one node on SQLite), BENCH_PG (postgres://postgres@127.0.0.1:5432, a
# role that may create databases), BENCH_DB (tributary_cluster_bench: dropped and created for
# every run), BENCH_LEASE_TIMEOUT (5), BENCH_TIMEOUT_SECS (900), BENCH_TRIBUTARY (a tributary
# binary to use instead of building one), BENCH_KEEP (1 keeps the work dir with the logs),
# BENCH_PG_QUERY (appended to the store URL after `?`, e.g. `pool_max=16`).
set -euo pipefail
export RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="${TRIBUTARY_PEERS_DIR:-$ROOT/.peers}"
N="${BENCH_RECORDS:-100000}"
SHARDS="${BENCH_SHARDS:-8}"
NODES="${BENCH_NODES:-1 2 3}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
DB="${BENCH_DB:-tributary_cluster_bench}"
LEASE_TIMEOUT="${BENCH_LEASE_TIMEOUT:-5}"
TIMEOUT="${BENCH_TIMEOUT_SECS:-900}"
STREAM=bench
WORK_PREFIX=tributary-cluster-bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
command -v psql >/dev/null || die "psql is required (it creates the bench database)"
TRIBUTARY="${BENCH_TRIBUTARY:-$TRIBUTARY}"

# --- kinesalite and the stream, once ----------------------------------------------------------------
mkfifo "$WORK/kinesalite.stdin"
node "$ROOT/scripts/peers/kinesalite.js" 0 <"$WORK/kinesalite.stdin" >"$WORK/kinesalite.log" 2>&1 &
PIDS+=($!)
exec 8>"$WORK/kinesalite.stdin" # kinesalite exits when this closes
KINESIS="http://$(wait_for_line "$WORK/kinesalite.log" '127\.0\.0\.1:[0-9]+' 30 kinesalite)"
log "kinesalite on $KINESIS"
"$TOOL" --endpoint "$KINESIS" --stream "$STREAM" create --shards "$SHARDS" >&2
log "filling $STREAM with $N records of ~1 KiB on $SHARDS shards"
"$TOOL" --endpoint "$KINESIS" --stream "$STREAM" fill --records "$N" >"$WORK/fill.out"

# --- helpers -----------------------------------------------------------------------------------------
NODE_PIDS=()
NODE_APIS=()

api_on() { # base-url method path [json-body]
  local args=(-sS --noproxy '*' --max-time 30 -X "$2" -H "Authorization: Bearer $TOKEN" "$1$3")
  [[ $# -ge 4 ]] && args+=(-H 'Content-Type: application/json' --data "$4")
  curl "${args[@]}"
}
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# CPU seconds of every node's process.
nodes_cpu() {
  local sum=0 pid
  for pid in "${NODE_PIDS[@]}"; do sum="$(awk -v a="$sum" -v b="$(proc_cpu "$pid")" 'BEGIN { printf "%.3f", a + b }')"; done
  echo "$sum"
}

# CPU seconds of PostgreSQL's processes: "<the bench database's connections> <the server's own>"
# (a backend's process title names its database).
pg_cpu() {
  local pid title ours=0 own=0 cpu
  for pid in $(pgrep -x postgres || true); do
    title="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || continue
    cpu="$(proc_cpu "$pid" 2>/dev/null)" || continue
    if [[ " $title " == *" $DB "* ]]; then
      ours="$(awk -v a="$ours" -v b="$cpu" 'BEGIN { printf "%.3f", a + b }')"
    elif [[ "$title" =~ walwriter|checkpointer|background\ writer|autovacuum ]]; then
      own="$(awk -v a="$own" -v b="$cpu" 'BEGIN { printf "%.3f", a + b }')"
    fi
  done
  echo "$ours $own"
}

start_nodes() { # count store-url-or-empty run-dir
  local i
  NODE_PIDS=()
  NODE_APIS=()
  for ((i = 1; i <= $1; i++)); do
    mkdir -p "$3/node$i"
    env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_ENDPOINT_URL -u AWS_CONFIG_FILE \
      -u AWS_SHARED_CREDENTIALS_FILE -u AWS_ROLE_ARN -u AWS_WEB_IDENTITY_TOKEN_FILE \
      TRIBUTARY_API_TOKEN="$TOKEN" TRIBUTARY_MASTER_KEY="$MASTER_KEY" TRIBUTARY_NODE_ID="node$i" \
      AWS_ENDPOINT_URL_KINESIS="$KINESIS" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
      AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=x AWS_EC2_METADATA_DISABLED=true \
      "$TRIBUTARY" serve --data-dir "$3/node$i" --listen 127.0.0.1:0 \
      ${2:+--store "$2" --lease-timeout "$LEASE_TIMEOUT"} \
      </dev/null >"$3/node$i.out" 2>"$3/node$i.err" &
    NODE_PIDS+=($!)
    PIDS+=($!)
    NODE_APIS+=("$(wait_for_line "$3/node$i.out" 'http://127\.0\.0\.1:[0-9]+' 60 "node $i")")
  done
}

stop_nodes() {
  local pid
  for pid in "${NODE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${NODE_PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# Prints a RESULT line: phase, store, nodes, records, wall and the CPU deltas.
result() { # phase store nodes t0 t1 trib0 trib1 "pg0" "pg1"
  python3 - "$@" "$N" <<'EOF'
import sys
phase, store, nodes, t0, t1, c0, c1, pg0, pg1, n = sys.argv[1:]
wall = float(t1) - float(t0)
trib = float(c1) - float(c0)
(o0, s0), (o1, s1) = (map(float, pg0.split()), map(float, pg1.split()))
ours, own, n = o1 - o0, s1 - s0, int(n)
if store == "sqlite":  # no server: what PostgreSQL's processes did meanwhile is others' work
    ours = own = 0.0
m = n / 1e6
print(f"RESULT {phase} store={store} nodes={nodes} records={n} wall_s={wall:.2f} records_per_s={n / wall:.0f} "
      f"tributary_cpu_s_per_m={trib / m:.2f} pg_connections_cpu_s_per_m={ours / m:.2f} "
      f"pg_server_own_cpu_s_per_m={own / m:.2f} total_cpu_s_per_m={(trib + ours + own) / m:.2f}")
EOF
}

run() { # store (sqlite|postgres) nodes
  local store="$1" nodes="$2" url="" dir="$WORK/$1-$2"
  mkdir -p "$dir"
  if [[ "$store" == postgres ]]; then
    psql "$PG/postgres" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
    psql "$PG/postgres" -qAtc "CREATE DATABASE $DB" >/dev/null
    url="$PG/$DB${BENCH_PG_QUERY:+?$BENCH_PG_QUERY}"
  fi
  log "run: $store, $nodes node(s)"
  start_nodes "$nodes" "$url" "$dir"
  local api="${NODE_APIS[0]}"
  if [[ "$store" == postgres ]]; then
    local deadline=$((SECONDS + 60))
    until (( $(api_on "$api" GET /api/cluster | grep -o '"last_heartbeat"' | wc -l) >= nodes )); do
      ((SECONDS < deadline)) || die "the cluster did not show $nodes nodes within 60 s"
      sleep 0.2
    done
  fi
  local auth job
  auth="$(api_on "$api" POST /api/authorizations \
    '{"label":"bench","method":"aws_keys","access_key_id":"AKIDBENCH0000000","secret_access_key":"x"}' | json_field id)"

  # Import.
  local t0 c0 p0 t1 c1 p1 events=0 deadline
  t0="$(now)"; c0="$(nodes_cpu)"; p0="$(pg_cpu)"
  job="$(api_on "$api" POST /api/jobs "{\"type\":\"kinesis_import\",\"label\":\"bench\",\"authorization\":\"$auth\",\"config\":{\"stream\":\"$STREAM\",\"region\":\"us-east-1\",\"kinesis_stream\":\"$STREAM\",\"start_position\":\"trim_horizon\"}}" | json_field id)"
  deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS < deadline)); do
    events="$(api_on "$api" GET "/api/jobs/$job" | grep -oE '"events_out":[0-9]+' | head -1 | cut -d: -f2)"
    (( ${events:-0} >= N )) && break
    sleep 0.1
  done
  t1="$(now)"; c1="$(nodes_cpu)"; p1="$(pg_cpu)"
  (( ${events:-0} >= N )) || die "import stored only ${events:-0} of $N events within $TIMEOUT s; logs in $dir"
  result import "$store" "$nodes" "$t0" "$t1" "$c0" "$c1" "$p0" "$p1" | tee -a "$RESULTS" >&2

  # Profiles: a mapping, audiences, then a rebuild over the N stored events.
  api_on "$api" PUT "/api/streams/$STREAM/mapping" \
    "SELECT user_id AS user_id KIND string, count(*) AS visits KIND int, set(event) AS events KIND []string, event AS last_event KIND string FROM $STREAM INTO user BY user_id" >/dev/null
  local i
  for ((i = 0; i < 10; i++)); do
    api_on "$api" POST /api/audiences "{\"slug\":\"a$i\",\"filter\":\"visits > $((i * 2))\"}" >/dev/null
  done
  t0="$(now)"; c0="$(nodes_cpu)"; p0="$(pg_cpu)"
  api_on "$api" POST /api/profiles/rebuild >/dev/null
  local state=""
  deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS < deadline)); do
    state="$(api_on "$api" GET /api/profiles/rebuild | json_field state)"
    [[ "$state" == done ]] && break
    sleep 0.1
  done
  t1="$(now)"; c1="$(nodes_cpu)"; p1="$(pg_cpu)"
  [[ "$state" == done ]] || die "the rebuild did not finish within $TIMEOUT s; logs in $dir"
  result profiles "$store" "$nodes" "$t0" "$t1" "$c0" "$c1" "$p0" "$p1" | tee -a "$RESULTS" >&2
  stop_nodes
}

if [[ "${BENCH_SQLITE:-1}" == 1 ]]; then run sqlite 1; fi
for n in $NODES; do run postgres "$n"; done
if [[ "${BENCH_SQLITE:-1}" == 1 ]]; then
  psql "$PG/postgres" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
fi

python3 - "$RESULTS" "$N" "$SHARDS" "$(nproc)" <<'EOF'
import sys
rows = []
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) > 2 and p[0] == "RESULT":
        rows.append((p[1], dict(kv.split("=", 1) for kv in p[2:])))
print()
print(f"{sys.argv[2]} records of ~1 KiB on {sys.argv[3]} shards (kinesalite), {sys.argv[4]} cores")
print()
print("| phase | store | nodes | records/s | Tributary CPU s/M | PostgreSQL connections CPU s/M | PostgreSQL server's own CPU s/M | total CPU s/M |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for phase, r in rows:
    pg = lambda k: "–" if r["store"] == "sqlite" else r[k]
    print(f"| {phase} | {r['store']} | {r['nodes']} | {int(r['records_per_s']):,} | {r['tributary_cpu_s_per_m']} | "
          f"{pg('pg_connections_cpu_s_per_m')} | {pg('pg_server_own_cpu_s_per_m')} | {r['total_cpu_s_per_m']} |")
EOF
