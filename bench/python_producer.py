"""The Python peer of bench/export.sh: async-kinesis (PyPI `async-kinesis`, import `kinesis`)
`Producer` putting N JSON records shaped like Tributary's export records (Lytics trigger
format, same fields, about the same size) to a Kinesis stream, one partition key per user.

    .peers/bench-venv/bin/python bench/python_producer.py --endpoint http://127.0.0.1:PORT \
        --stream peer --records N --pad 120

Prints records/s, CPU seconds per million records and peak RSS, measured from just before the
producer starts until it has flushed (interpreter start-up and imports excluded, as Tributary's
start-up is), and a `RESULT python_producer …` line. Settings for parity with Tributary's
exporter: batches of up to 500 records (PutRecords), JSON serialization by the library's
JsonProcessor (no aggregation: one Kinesis record per change), and the per-shard rate limit
raised above what the emulator can take (Tributary does not rate-limit on its own either).
"""

import argparse
import asyncio
import os
import resource
import sys
import time
import uuid


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def record(i, pad, audience_id, job_id):
    """A record like Tributary's: user fields, one segment event, meta."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {
        "data": {
            "user_id": f"user-{i}",
            "first_name": f"First{i}",
            "tier": "vip",
            "pad": pad,
            "segment_events": [
                {"id": audience_id, "slug": "vip", "event": "enter", "enter": now}
            ],
        },
        "meta": {
            "object": "user",
            "subscription_id": job_id,
            "timestamp": now,
            "profile_id": str(uuid.uuid4()),
            "backfill": False,
            "change_id": f"change-{i}",
        },
    }


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--stream", default="peer")
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--pad", type=int, default=120, help="length of the pad field")
    ap.add_argument("--target-bytes", type=int, default=0,
                    help="adjust the pad so a serialized record has this size (Tributary's)")
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDBENCH")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "x")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from kinesis import Producer  # imported before the clock starts

    import json

    pad = "x" * args.pad
    audience_id = str(uuid.uuid4())
    job_id = str(uuid.uuid4())
    size = len(json.dumps(record(0, pad, audience_id, job_id)).encode())
    if args.target_bytes:
        pad = "x" * max(0, args.pad + args.target_bytes - size)
        size = len(json.dumps(record(0, pad, audience_id, job_id)).encode())
    cpu0, t0 = cpu_seconds(), time.monotonic()
    async with Producer(
        args.stream,
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        batch_size=500,
        max_queue_size=10_000,
        put_rate_limit_per_shard=100_000,
        buffer_time=0.05,
    ) as producer:
        for i in range(args.records):
            await producer.put(record(i, pad, audience_id, job_id), partition_key=f"user-{i}")
            if time.monotonic() - t0 > args.timeout:
                print("python producer: timeout", file=sys.stderr)
                sys.exit(1)
        await producer.flush()
    wall = time.monotonic() - t0
    cpu = cpu_seconds() - cpu0
    n = args.records
    per_m = cpu / (n / 1e6)
    peak = peak_rss_mib()
    print(
        f"python peer (async-kinesis Producer, JSON, ~{size} B records): {n} records in {wall:.2f} s = "
        f"{n / wall:.0f} records/s; CPU {cpu:.2f} s ({per_m:.2f} s/M); peak RSS {peak:.1f} MiB"
    )
    print(
        f"RESULT python_producer records={n} record_bytes={size} wall_s={wall:.3f} "
        f"records_per_s={n / wall:.0f} cpu_s={cpu:.3f} cpu_s_per_m={per_m:.3f} peak_rss_mib={peak:.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
