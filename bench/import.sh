#!/usr/bin/env bash
# Tributary's import benchmark, side by side, in one run:
#
#   bench/import.sh                       # N = 100,000 records of ~1 KiB, 4 shards
#   BENCH_RECORDS=20000 bench/import.sh   # quicker
#
#   pipeline  cargo bench --bench pipeline: recorded GetRecords pages → decode → SQLite, no network
#   (a) drain the AWS SDK for Rust reading the stream with GetRecords only (the emulator's ceiling)
#   (b) import tributary serve + an import job created over the HTTP API, until events_out == N
#   (c) python async-kinesis Consumer reading the same stream, decoding JSON only
#   (d) latency PutRecord → event readable via GET /api/streams/bench/events, on an idle stream
#
# Everything runs on 127.0.0.1: kinesalite (in memory, shardLimit raised, from .peers/; run
# `scripts/setup-peers --bench` once, or let this script do it), the release build of Tributary
# and of the `kinesis_bench` example (bench/kinesis_bench.rs: create, fill, drain, latency).
# Every wait is bounded; everything started here is stopped on exit (trap EXIT; kinesalite also
# exits when the pipe it reads on closes, so even a killed script leaves nothing behind).
#
# Why a bash script (and not one Rust binary): the work is orchestrating four processes (node,
# tributary, python, the SDK tool), and each must be measured as a separate process from outside
# (/proc/PID/stat, VmHWM) - a shell does that in a few lines and anyone can read and re-run each
# step by hand. The parts that need an SDK are Rust (the example), the Python peer is Python.
#
# Settings (environment): BENCH_RECORDS (100000), BENCH_PIPELINE_RECORDS (200000; 0 skips the
# pipeline bench), BENCH_PROBES (200), BENCH_PROBE_INTERVAL_MS (100), BENCH_TIMEOUT_SECS (600),
# BENCH_WARMUP (1: one unreported drain first, so the node emulator is JIT-warm for every
# reader), BENCH_KEEP (1 keeps the work dir with all logs), BENCH_PYTHON (0 skips the Python
# peer), BENCH_PERF (1 records a CPU profile of tributary during the import with `perf record`
# and prints the top symbols; needs perf and perf_event_paranoid <= 2), BENCH_PROBES=0 skips (d),
# BENCH_TRIBUTARY_LD_PRELOAD (e.g. a libjemalloc.so.2 path: try another allocator for tributary
# only, without rebuilding).
set -euo pipefail
export RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="${TRIBUTARY_PEERS_DIR:-$ROOT/.peers}"
N="${BENCH_RECORDS:-100000}"
PIPELINE_N="${BENCH_PIPELINE_RECORDS:-200000}"
PROBES="${BENCH_PROBES:-200}"
PROBE_INTERVAL_MS="${BENCH_PROBE_INTERVAL_MS:-100}"
TIMEOUT="${BENCH_TIMEOUT_SECS:-600}"
WARMUP="${BENCH_WARMUP:-1}"
SHARDS=4
STREAM=bench
WORK_PREFIX=tributary-bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# --- pipeline (no network) ---------------------------------------------------------------------
if [[ "$PIPELINE_N" != 0 ]]; then
  log "pipeline: cargo bench --bench pipeline ($PIPELINE_N records)"
  (cd "$ROOT" && BENCH_RECORDS="$PIPELINE_N" cargo bench --quiet --bench pipeline) | tee "$WORK/pipeline.out" >&2
  grep '^RESULT ' "$WORK/pipeline.out" >>"$RESULTS"
fi

# --- kinesalite ----------------------------------------------------------------------------------
mkfifo "$WORK/kinesalite.stdin"
node "$ROOT/scripts/peers/kinesalite.js" 0 <"$WORK/kinesalite.stdin" >"$WORK/kinesalite.log" 2>&1 &
PIDS+=($!)
exec 8>"$WORK/kinesalite.stdin" # kinesalite exits when this closes
KINESIS="http://$(wait_for_line "$WORK/kinesalite.log" '127\.0\.0\.1:[0-9]+' 30 kinesalite)"
log "kinesalite on $KINESIS"

"$TOOL" --endpoint "$KINESIS" --stream "$STREAM" create --shards "$SHARDS" >&2
log "filling $STREAM with $N records of ~1 KiB"
"$TOOL" --endpoint "$KINESIS" --stream "$STREAM" fill --records "$N" | tee -a "$WORK/fill.out" >&2

# --- (a) plain drain --------------------------------------------------------------------------------
if [[ "$WARMUP" == 1 ]]; then
  log "warm-up drain (not reported)"
  "$TOOL" --endpoint "$KINESIS" --stream "$STREAM" drain --records "$N" --timeout-secs "$TIMEOUT" >&2
fi
log "(a) plain drain with the AWS SDK for Rust"
"$TOOL" --endpoint "$KINESIS" --stream "$STREAM" drain --records "$N" --timeout-secs "$TIMEOUT" | tee "$WORK/drain.out" >&2
grep '^RESULT ' "$WORK/drain.out" >>"$RESULTS"

# --- (c) Python peer ----------------------------------------------------------------------------------
if [[ "${BENCH_PYTHON:-1}" != 0 ]]; then
  log "(c) python peer: async-kinesis Consumer"
  "$PEERS/bench-venv/bin/python" "$ROOT/bench/python_peer.py" --endpoint "$KINESIS" --stream "$STREAM" \
    --records "$N" --timeout "$TIMEOUT" | tee "$WORK/python.out" >&2
  grep '^RESULT ' "$WORK/python.out" >>"$RESULTS"
fi

# --- (b) Tributary import end to end --------------------------------------------------------------------
log "(b) tributary serve + import job"
start_tributary
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# (Tributary requires 16-128 characters for an access key id, so not plain "AKIDBENCH".)
AUTH_JSON="$(api POST /api/authorizations \
  '{"label":"bench","method":"aws_keys","access_key_id":"AKIDBENCH0000000","secret_access_key":"x"}')"
AUTH_ID="$(json_field id <<<"$AUTH_JSON" 2>/dev/null)" || die "creating the authorization failed: $AUTH_JSON"
PERF_PID=
if [[ "${BENCH_PERF:-0}" == 1 ]]; then
  perf record -F 999 -g -p "$TRIB_PID" -o "$WORK/perf.data" >"$WORK/perf.log" 2>&1 &
  PERF_PID=$!
  PIDS+=("$PERF_PID")
  sleep 0.5
fi
CPU0="$(proc_cpu "$TRIB_PID")"
T0="$(now)"
JOB_JSON="$(api POST /api/jobs "{\"type\":\"kinesis_import\",\"label\":\"bench\",\"authorization\":\"$AUTH_ID\",\"config\":{\"stream\":\"$STREAM\",\"region\":\"us-east-1\",\"kinesis_stream\":\"$STREAM\",\"start_position\":\"trim_horizon\"}}")"
JOB_ID="$(json_field id <<<"$JOB_JSON" 2>/dev/null)" || die "creating the job failed: $JOB_JSON"
log "job $JOB_ID running; polling until events_out == $N"
deadline=$((SECONDS + TIMEOUT))
events=0
while ((SECONDS < deadline)); do
  status="$(api GET "/api/jobs/$JOB_ID" || true)"
  events="$(grep -oE '"events_out":[0-9]+' <<<"$status" | head -1 | cut -d: -f2)"
  events="${events:-0}"
  ((events >= N)) && break
  grep -q '"state":"failed"' <<<"$status" && die "the job failed: $status"
  kill -0 "$TRIB_PID" 2>/dev/null || die "tributary exited; see $WORK/tributary.err"
  sleep 0.1
done
T1="$(now)"
CPU1="$(proc_cpu "$TRIB_PID")"
((events >= N)) || die "import stored only $events of $N events within ${TIMEOUT} s"
if [[ -n "$PERF_PID" ]]; then
  kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true
  log "perf profile of tributary during the import (top symbols by self time):"
  { perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null || true; } \
    | grep -E '^ +[0-9]' | sed -e 's/  *- *- *$//' | cut -c1-160 >"$WORK/perf.all" || true
  head -40 "$WORK/perf.all" | tee "$WORK/perf.top" >&2
fi
HWM="$(proc_hwm_mib "$TRIB_PID")"
# Where the import's wall time went, from Tributary's own metrics.
curl -sS --noproxy '*' --max-time 10 "$API/metrics" >"$WORK/metrics.txt" 2>/dev/null || true
if grep -q '^tributary_batch_commit_seconds_sum\|^batch_commit_seconds_sum' "$WORK/metrics.txt"; then
  log "tributary metrics: $(grep -E '^(tributary_)?(batch_commit_seconds_(sum|count)|get_records_calls_total)' "$WORK/metrics.txt" | sed -e 's/{[^}]*}//' | tr '\n' ' ')"
fi
python3 - "$N" "$T0" "$T1" "$CPU0" "$CPU1" "$HWM" >>"$RESULTS" <<'EOF'
import sys
n, t0, t1, c0, c1, hwm = int(sys.argv[1]), *map(float, sys.argv[2:])
wall, cpu = t1 - t0, c1 - c0
print(f"RESULT import records={n} wall_s={wall:.3f} records_per_s={n / wall:.0f} cpu_s={cpu:.3f} "
      f"cpu_s_per_m={cpu / (n / 1e6):.3f} peak_rss_mib={hwm:.1f}")
EOF
tail -1 "$RESULTS" >&2

# --- (d) latency on the idle stream -------------------------------------------------------------------
if [[ "$PROBES" != 0 ]]; then
log "(d) latency: $PROBES PutRecord probes ${PROBE_INTERVAL_MS} ms apart while polling the API"
sleep 3 # let the readers see the stream idle
"$TOOL" --endpoint "$KINESIS" --stream "$STREAM" latency --api "$API" --token "$TOKEN" \
  --event-stream "$STREAM" --count "$PROBES" --interval-ms "$PROBE_INTERVAL_MS" | tee "$WORK/latency.out" >&2
grep '^RESULT ' "$WORK/latency.out" >>"$RESULTS"
fi
echo "RESULT import_after_latency peak_rss_mib=$(proc_hwm_mib "$TRIB_PID") cpu_s=$(proc_cpu "$TRIB_PID")" >>"$RESULTS"

# --- the table ----------------------------------------------------------------------------------------
python3 - "$RESULTS" "$N" "$(nproc)" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) >= 2 and parts[0] == "RESULT":
        rows[parts[1]] = {k: v for k, v in (p.split("=", 1) for p in parts[2:])}
n, cores = int(sys.argv[2]), sys.argv[3]
f = lambda name, key: float(rows[name][key]) if name in rows and key in rows[name] else float("nan")
print()
print(f"Tributary import benchmark: {n} records of ~1 KiB JSON, 4-shard stream on kinesalite, {cores} cores")
print()
print("| measure | records/s | CPU s / M records | peak RSS MiB |")
print("|---|---:|---:|---:|")
names = [("pipeline", f"pipeline, no network ({rows.get('pipeline', {}).get('records', '-')} records: decode → SQLite commit)"),
         ("drain", "(a) plain drain, AWS SDK for Rust (GetRecords only)"),
         ("import", "(b) Tributary import end to end (decode, store, checkpoint)"),
         ("python", "(c) Python peer, async-kinesis Consumer (JSON decode only)")]
for key, label in names:
    if key in rows:
        print(f"| {label} | {f(key, 'records_per_s'):,.0f} | {f(key, 'cpu_s_per_m'):.2f} | {f(key, 'peak_rss_mib'):.1f} |")
if "latency" in rows:
    r = rows["latency"]
    print(f"| (d) PutRecord → readable via API, idle stream ({r['probes']} probes) | p50 {r['p50_ms']} ms · p90 {r['p90_ms']} ms · p99 {r['p99_ms']} ms · max {r['max_ms']} ms (missing {r['missing']}) | | |")
print()
def verdict(ok): return "met" if ok else "MISSED"
checks = []
if "import" in rows and "drain" in rows:
    r = f("import", "records_per_s") / f("drain", "records_per_s")
    checks.append(("import rate ≥ 0.8 × plain drain", f"{r:.2f} ×", r >= 0.8))
if "import" in rows and "python" in rows:
    r = f("import", "cpu_s_per_m") / f("python", "cpu_s_per_m")
    checks.append(("Tributary CPU/record ≤ 1/5 of the Python peer's", f"{r:.3f} (1/{1 / r:.1f})" if r > 0 else f"{r}", r <= 0.2))
if "pipeline" in rows:
    r = f("pipeline", "records_per_s")
    checks.append(("pipeline ≥ 50,000 records/s", f"{r:,.0f} records/s", r >= 50_000))
if "import" in rows:
    peak = max(f("import", "peak_rss_mib"), f("import_after_latency", "peak_rss_mib") if "import_after_latency" in rows else 0)
    checks.append(("Tributary peak RSS < 150 MiB", f"{peak:.1f} MiB", peak < 150))
if "latency" in rows:
    p99 = f("latency", "p99_ms")
    checks.append(("p99 PutRecord → readable < 1 s", f"{p99:.0f} ms", p99 < 1000))
print("| target | measured | |")
print("|---|---:|---|")
for name, measured, ok in checks:
    print(f"| {name} | {measured} | {verdict(ok)} |")
EOF
