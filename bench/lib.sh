# Shared by bench/import.sh and bench/export.sh: settings, logging, cleanup of everything
# started (PIDS), /proc readers, a bounded wait, prerequisites and the release build.
# The caller sets ROOT, PEERS and (optionally) WORK_PREFIX, then sources this file.
# shellcheck shell=bash

TOKEN="bench-token-$RANDOM$RANDOM"
MASTER_KEY=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
CLK_TCK="$(getconf CLK_TCK)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/${WORK_PREFIX:-tributary-bench}.XXXXXX")"
RESULTS="$WORK/results"
: >"$RESULTS"
PIDS=()

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  exec 8>&- 2>/dev/null || true
  if [[ "${BENCH_KEEP:-0}" == 1 || $rc -ne 0 ]]; then
    log "logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# /proc/PID/stat: utime + stime (fields 14, 15) in seconds. The command name is in parentheses
# and may contain spaces: cut at the last ')'.
proc_cpu() {
  local stat
  stat="$(cat "/proc/$1/stat")"
  stat="${stat##*) }"
  awk -v t="$CLK_TCK" '{ printf "%.3f", ($12 + $13) / t }' <<<"$stat"
}
proc_hwm_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
now() { date +%s.%N; }

# Waits (bounded) until FILE contains a line matching REGEX; prints the first match.
wait_for_line() { # file regex timeout-seconds what
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    if grep -m1 -oE "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  die "$4 did not start within $3 s; see $1"
}

# --- prerequisites ---------------------------------------------------------------------------------
command -v node >/dev/null || die "node is required (kinesalite)"
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"
if [[ ! -f "$PEERS/node/node_modules/kinesalite/package.json" || ! -x "$PEERS/bench-venv/bin/python" ]]; then
  log "installing peers: scripts/setup-peers --bench"
  "$ROOT/scripts/setup-peers" --bench
fi

log "building release: tributary + the kinesis_bench example"
(cd "$ROOT" && cargo build --release --quiet --bin tributary --example kinesis_bench)
TRIBUTARY="$ROOT/target/release/tributary"
TOOL="$ROOT/target/release/examples/kinesis_bench"

# Starts `tributary serve` on a fresh data dir talking to $KINESIS, with none of the machine's
# own AWS settings; sets API (its URL) and TRIB_PID. BENCH_TRIBUTARY_LD_PRELOAD tries another
# allocator for tributary alone.
start_tributary() {
  mkdir -p "$WORK/data"
  env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_ENDPOINT_URL -u AWS_CONFIG_FILE \
    -u AWS_SHARED_CREDENTIALS_FILE -u AWS_ROLE_ARN -u AWS_WEB_IDENTITY_TOKEN_FILE \
    TRIBUTARY_API_TOKEN="$TOKEN" TRIBUTARY_MASTER_KEY="$MASTER_KEY" \
    AWS_ENDPOINT_URL_KINESIS="$KINESIS" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=x AWS_EC2_METADATA_DISABLED=true \
    ${BENCH_TRIBUTARY_LD_PRELOAD:+LD_PRELOAD=$BENCH_TRIBUTARY_LD_PRELOAD} \
    "$TRIBUTARY" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 \
    </dev/null >"$WORK/tributary.out" 2>"$WORK/tributary.err" &
  TRIB_PID=$!
  PIDS+=("$TRIB_PID")
  API="$(wait_for_line "$WORK/tributary.out" 'http://127\.0\.0\.1:[0-9]+' 30 'tributary serve')"
  log "tributary on $API (pid $TRIB_PID)"
}

api() { # method path [json-body]
  local args=(-sS --noproxy '*' --max-time 30 -X "$1" -H "Authorization: Bearer $TOKEN" "$API$2")
  [[ $# -ge 3 ]] && args+=(-H 'Content-Type: application/json' --data "$3")
  curl "${args[@]}"
}
