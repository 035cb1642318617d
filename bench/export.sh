#!/usr/bin/env bash
# Tributary's export benchmark (Export Audience Triggers, issue 5), side by side, in one run:
#
#   bench/export.sh                       # N = 20,000 audience changes, 4-shard stream
#   BENCH_CHANGES=5000 bench/export.sh    # quicker
#
#   (a) bulk    N users collected while the export job is paused (the CDP turns them into N
#               'enter' changes of the `vip` audience), then the job is resumed and timed until
#               Kinesis acknowledged all N records (events_out == N): records/s, CPU seconds of
#               the tributary process per million records (/proc/PID/stat), peak RSS (VmHWM).
#               The CDP work (collect → profiles → audience changes) is measured separately.
#   (b) python  async-kinesis `Producer` putting N records of the same shape and size (JSON,
#               one per change, batches of 500) to another 4-shard stream of the same emulator.
#   (c) paced   a fresh export job while new users enter `vip` at BENCH_RATE changes/s
#               (default 1,000/s for BENCH_PACED_SECS = 20 s): change→ack latency p50/p99 from
#               the job's `tributary_export_change_to_ack_seconds` histogram (linear
#               interpolation inside a bucket, as Prometheus' histogram_quantile does; the
#               bucket bounds are printed too), CPU per million records at that rate.
#
# Everything runs on 127.0.0.1: kinesalite (in memory, from .peers/; `scripts/setup-peers
# --bench` installs it and the Python peer, or this script does), the release build of Tributary
# and the `kinesis_bench` example (bench/kinesis_bench.rs, used here only to create streams).
# Every wait is bounded; everything started here is stopped on exit.
#
# Settings (environment): BENCH_CHANGES (20000), BENCH_RATE (1000), BENCH_PACED_SECS (20),
# BENCH_PAD (120: length of a padding field, making records about 560 bytes),
# BENCH_TIMEOUT_SECS (600), BENCH_KEEP (1 keeps the work dir with all logs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="${TRIBUTARY_PEERS_DIR:-$ROOT/.peers}"
N="${BENCH_CHANGES:-20000}"
RATE="${BENCH_RATE:-1000}"
PACED_SECS="${BENCH_PACED_SECS:-20}"
PAD="${BENCH_PAD:-120}"
TIMEOUT="${BENCH_TIMEOUT_SECS:-600}"
SHARDS=4
WORK_PREFIX=tributary-export-bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# --- kinesalite ----------------------------------------------------------------------------------
mkfifo "$WORK/kinesalite.stdin"
node "$ROOT/scripts/peers/kinesalite.js" 0 <"$WORK/kinesalite.stdin" >"$WORK/kinesalite.log" 2>&1 &
PIDS+=($!)
exec 8>"$WORK/kinesalite.stdin" # kinesalite exits when this closes
KINESIS="http://$(wait_for_line "$WORK/kinesalite.log" '127\.0\.0\.1:[0-9]+' 30 kinesalite)"
log "kinesalite on $KINESIS"
for stream in triggers paced peer; do
  "$TOOL" --endpoint "$KINESIS" --stream "$stream" create --shards "$SHARDS" >&2
done

# --- tributary -------------------------------------------------------------------------------------
start_tributary
json_get() { python3 -c 'import json,sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$1"; }
members() { api GET /api/audiences/vip | json_get members; }
events_out() { api GET "/api/jobs/$1" | json_get status.events_out; }
# Waits (bounded) until the command prints a number >= the target.
wait_at_least() { # target what cmd...
  local target=$1 what=$2 deadline=$((SECONDS + TIMEOUT)) got=0
  shift 2
  while ((SECONDS < deadline)); do
    got="$("$@" 2>/dev/null || echo 0)"
    ((got >= target)) && return 0
    kill -0 "$TRIB_PID" 2>/dev/null || die "tributary exited; see $WORK/tributary.err"
    sleep 0.05
  done
  die "$what: only $got of $target within ${TIMEOUT} s"
}

curl -sS --noproxy '*' --fail -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: text/plain' \
  --data-binary $'SELECT\n    user_id AS user_id KIND string,\n    first_name AS first_name KIND string,\n    tier AS tier KIND string,\n    pad AS pad KIND string,\nFROM web\nINTO user BY user_id\nALIAS web' \
  "$API/api/streams/web/mapping" >/dev/null || die "setting the mapping failed"
api POST /api/audiences '{"slug":"vip","name":"VIP","description":"bench","filter":"tier = \"vip\""}' >/dev/null
AUTH_ID="$(api POST /api/authorizations \
  '{"label":"bench","method":"aws_keys","access_key_id":"AKIABENCHKINESALITE1","secret_access_key":"bench-secret"}' | json_get id)" \
  || die "creating the authorization failed"

create_job() { # stream → job id, once the job has taken its starting point
  local id created
  id="$(api POST /api/jobs "{\"type\":\"kinesis_export\",\"label\":\"bench $1\",\"authorization\":\"$AUTH_ID\",\"config\":{\"audiences\":[\"vip\"],\"region\":\"us-east-1\",\"kinesis_stream\":\"$1\",\"user_identifier_field\":\"user_id\",\"export_fields\":[\"user_id\",\"first_name\",\"tier\",\"pad\"]}}" | json_get id)" \
    || die "creating the export job failed"
  for _ in $(seq 200); do
    created="$(api GET "/api/jobs/$id")"
    [[ "$(json_get created_at <<<"$created")" != "$(json_get updated_at <<<"$created")" ]] && break
    sleep 0.05
  done
  echo "$id"
}

# Posts users [from, to) entering vip, in requests of 1000 events.
collect_users() { # prefix from to
  python3 - "$API" "$TOKEN" "$1" "$2" "$3" "$PAD" <<'EOF'
import json, sys, urllib.request
api, token, prefix, lo, hi, pad = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
for start in range(lo, hi, 1000):
    events = [{"user_id": f"{prefix}{i}", "first_name": f"First{i}", "tier": "vip", "pad": "x" * pad}
              for i in range(start, min(start + 1000, hi))]
    req = urllib.request.Request(f"{api}/api/collect/web", data=json.dumps(events).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert opener.open(req, timeout=60).status == 202
EOF
}

# --- (a) bulk export -------------------------------------------------------------------------------
JOB="$(create_job triggers)"
api POST "/api/jobs/$JOB/pause" >/dev/null
log "(a) collecting $N users while job $JOB is paused"
CPU_C0="$(proc_cpu "$TRIB_PID")"; T_C0="$(now)"
collect_users u 0 "$N"
wait_at_least "$N" "vip members" members
T_C1="$(now)"; CPU_C1="$(proc_cpu "$TRIB_PID")"
HWM_CDP="$(proc_hwm_mib "$TRIB_PID")"
# Reset the peak RSS (VmHWM) so the export's own peak is measured apart from the CDP's.
echo 5 >"/proc/$TRIB_PID/clear_refs" 2>/dev/null || log "cannot reset VmHWM: the export's peak includes the CDP's"
log "the CDP made $N audience changes (peak RSS so far $HWM_CDP MiB); resuming the export"
CPU0="$(proc_cpu "$TRIB_PID")"; T0="$(now)"
api POST "/api/jobs/$JOB/resume" >/dev/null
wait_at_least "$N" "records acknowledged" events_out "$JOB"
T1="$(now)"; CPU1="$(proc_cpu "$TRIB_PID")"
HWM="$(proc_hwm_mib "$TRIB_PID")"
python3 - "$N" "$T0" "$T1" "$CPU0" "$CPU1" "$HWM" "$T_C0" "$T_C1" "$CPU_C0" "$CPU_C1" "$HWM_CDP" >>"$RESULTS" <<'EOF'
import sys
n = int(sys.argv[1]); t0, t1, c0, c1, hwm, tc0, tc1, cc0, cc1, hwm_cdp = map(float, sys.argv[2:])
wall, cpu = t1 - t0, c1 - c0
print(f"RESULT export records={n} wall_s={wall:.3f} records_per_s={n / wall:.0f} cpu_s={cpu:.3f} "
      f"cpu_s_per_m={cpu / (n / 1e6):.3f} peak_rss_mib={hwm:.1f}")
print(f"RESULT cdp changes={n} wall_s={tc1 - tc0:.3f} changes_per_s={n / (tc1 - tc0):.0f} "
      f"cpu_s={cc1 - cc0:.3f} cpu_s_per_m={(cc1 - cc0) / (n / 1e6):.3f} peak_rss_mib={hwm_cdp:.1f}")
EOF
tail -2 "$RESULTS" >&2
# The size of Tributary's records (one read back), to compare with the peer's.
"$PEERS/bench-venv/bin/python" - "$KINESIS" >>"$RESULTS" <<'EOF2' || log "could not read a sample record"
import sys, botocore.session
c = botocore.session.get_session().create_client("kinesis", endpoint_url=sys.argv[1], region_name="us-east-1",
                                                 aws_access_key_id="AKIDBENCH", aws_secret_access_key="x")
shard = c.list_shards(StreamName="triggers")["Shards"][0]["ShardId"]
it = c.get_shard_iterator(StreamName="triggers", ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
recs = c.get_records(ShardIterator=it, Limit=100)["Records"]
print(f"RESULT sample record_bytes={sum(len(r['Data']) for r in recs) // max(len(recs), 1)}")
EOF2
api DELETE "/api/jobs/$JOB" >/dev/null

# --- (b) python peer ---------------------------------------------------------------------------------
log "(b) python peer: async-kinesis Producer, $N records"
OWN_BYTES="$(grep -oE '^RESULT sample record_bytes=[0-9]+' "$RESULTS" | cut -d= -f2 || true)"
"$PEERS/bench-venv/bin/python" "$ROOT/bench/python_producer.py" --endpoint "$KINESIS" --stream peer \
  --records "$N" --pad "$PAD" --target-bytes "${OWN_BYTES:-0}" --timeout "$TIMEOUT" | tee "$WORK/python.out" >&2
grep '^RESULT ' "$WORK/python.out" >>"$RESULTS"

# --- (c) paced ----------------------------------------------------------------------------------------
PACED_N=$((RATE * PACED_SECS))
JOB="$(create_job paced)"
log "(c) paced: $RATE new vip users/s for $PACED_SECS s into job $JOB"
CPU0="$(proc_cpu "$TRIB_PID")"; T0="$(now)"
python3 - "$API" "$TOKEN" "$RATE" "$PACED_SECS" "$PAD" <<'EOF'
import json, sys, time, urllib.request
api, token, rate, secs, pad = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
tick = 0.1  # a request every 100 ms, on an absolute schedule
per_tick = int(rate * tick)
start, i, late = time.monotonic(), 0, 0
for k in range(int(secs / tick)):
    due = start + k * tick
    pause = due - time.monotonic()
    if pause > 0:
        time.sleep(pause)
    else:
        late += 1
    events = [{"user_id": f"p{i + j}", "first_name": "Paced", "tier": "vip", "pad": "x" * pad} for j in range(per_tick)]
    i += per_tick
    req = urllib.request.Request(f"{api}/api/collect/web", data=json.dumps(events).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert opener.open(req, timeout=30).status == 202
print(f"paced driver: {i} users in {time.monotonic() - start:.2f} s ({late} ticks late)", file=sys.stderr)
EOF
wait_at_least "$PACED_N" "paced records acknowledged" events_out "$JOB"
T1="$(now)"; CPU1="$(proc_cpu "$TRIB_PID")"
curl -sS --noproxy '*' "$API/metrics" >"$WORK/metrics.txt"
python3 - "$WORK/metrics.txt" "$JOB" "$PACED_N" "$RATE" "$T0" "$T1" "$CPU0" "$CPU1" "$(proc_hwm_mib "$TRIB_PID")" >>"$RESULTS" <<'EOF'
import re, sys
path, job, n, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0, t1, c0, c1, hwm = map(float, sys.argv[5:])
buckets = []
for line in open(path):
    m = re.match(r'tributary_export_change_to_ack_seconds_bucket\{(.*)\} (\S+)', line)
    if m and f'job="{job}"' in m.group(1):
        le = re.search(r'le="([^"]+)"', m.group(1)).group(1)
        buckets.append((float("inf") if le == "+Inf" else float(le), float(m.group(2))))
buckets.sort()
total = buckets[-1][1]
def quantile(q):
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le, prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9), le
        prev_le, prev_c = le, c
    return float("nan"), float("nan")
p50, b50 = quantile(0.5)
p99, b99 = quantile(0.99)
cpu = c1 - c0
print(f"RESULT paced changes={n} rate={rate} observed={total:.0f} p50_ms={p50 * 1000:.0f} p50_bucket_ms={b50 * 1000:.0f} "
      f"p99_ms={p99 * 1000:.0f} p99_bucket_ms={b99 * 1000:.0f} wall_s={t1 - t0:.3f} cpu_s={cpu:.3f} "
      f"cpu_s_per_m={cpu / (n / 1e6):.3f} peak_rss_mib={hwm:.1f}")
print("RESULT paced_buckets " + " ".join(f"le_{le}={c:.0f}" for le, c in buckets))
EOF
tail -2 "$RESULTS" >&2

# --- the table ----------------------------------------------------------------------------------------
python3 - "$RESULTS" "$N" "$(nproc)" "$RATE" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) >= 2 and parts[0] == "RESULT":
        rows[parts[1]] = {k: v for k, v in (p.split("=", 1) for p in parts[2:])}
n, cores, rate = int(sys.argv[2]), sys.argv[3], sys.argv[4]
f = lambda name, key: float(rows[name][key]) if name in rows and key in rows[name] else float("nan")
size = rows.get("python_producer", {}).get("record_bytes", "?")
own = rows.get("sample", {}).get("record_bytes", "?")
print()
print(f"Tributary export benchmark: {n} audience changes → JSON records of ~{own} B (the peer's: ~{size} B), 4-shard stream on kinesalite, {cores} cores")
print()
print("| measure | records/s | CPU s / M records | peak RSS MiB |")
print("|---|---:|---:|---:|")
if "export" in rows:
    print(f"| (a) Tributary export, outbox → PutRecords acked (job resumed on {n} pending changes) | {f('export', 'records_per_s'):,.0f} | {f('export', 'cpu_s_per_m'):.2f} | {f('export', 'peak_rss_mib'):.1f} |")
if "cdp" in rows:
    print(f"| (a') for reference: the CDP making those changes (collect → profiles → audience changes) | {f('cdp', 'changes_per_s'):,.0f} | {f('cdp', 'cpu_s_per_m'):.2f} | {f('cdp', 'peak_rss_mib'):.1f} |")
if "python_producer" in rows:
    print(f"| (b) Python peer, async-kinesis Producer (JSON, batches of 500) | {f('python_producer', 'records_per_s'):,.0f} | {f('python_producer', 'cpu_s_per_m'):.2f} | {f('python_producer', 'peak_rss_mib'):.1f} |")
if "paced" in rows:
    r = rows["paced"]
    print(f"| (c) paced {rate} changes/s, {r['changes']} changes: change→ack p50 {r['p50_ms']} ms (bucket ≤ {r['p50_bucket_ms']} ms) · p99 {r['p99_ms']} ms (bucket ≤ {r['p99_bucket_ms']} ms); CPU incl. the CDP | {int(r['changes']) / float(r['wall_s']):,.0f} | {f('paced', 'cpu_s_per_m'):.2f} | {f('paced', 'peak_rss_mib'):.1f} |")
print()
def verdict(ok): return "met" if ok else "MISSED"
checks = []
if "export" in rows and "python_producer" in rows:
    r = f("export", "cpu_s_per_m") / f("python_producer", "cpu_s_per_m")
    checks.append(("Tributary export CPU/record ≤ 1/5 of the Python peer's", f"{r:.3f} (1/{1 / r:.1f})" if r > 0 else f"{r}", r <= 0.2))
if "paced" in rows:
    p99 = f("paced", "p99_ms")
    checks.append((f"p99 change→ack < 500 ms at {rate} changes/s", f"{p99:.0f} ms (bucket ≤ {rows['paced']['p99_bucket_ms']} ms)", f("paced", "p99_bucket_ms") <= 500))
peak = f("export", "peak_rss_mib")
checks.append(("Tributary peak RSS < 150 MiB while exporting", f"{peak:.1f} MiB", peak < 150))
peak = max(f("cdp", "peak_rss_mib"), f("paced", "peak_rss_mib"))
checks.append(("Tributary peak RSS < 150 MiB overall (CDP ingest included)", f"{peak:.1f} MiB", peak < 150))
print("| target | measured | |")
print("|---|---:|---|")
for name, measured, ok in checks:
    print(f"| {name} | {measured} | {verdict(ok)} |")
EOF
