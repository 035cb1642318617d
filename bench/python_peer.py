"""The Python peer of bench/import.sh: async-kinesis (PyPI `async-kinesis`, import `kinesis`)
reading a Kinesis stream from TRIM_HORIZON and only decoding JSON (its default JsonProcessor),
until N records arrived.

    .peers/bench-venv/bin/python bench/python_peer.py --endpoint http://127.0.0.1:PORT --stream bench --records N

Prints records/s, CPU seconds per million records and peak RSS, measured from just before the
consumer starts (interpreter start-up and imports are excluded, as Tributary's start-up is), and
a `RESULT python …` line. Settings chosen for parity with Tributary: GetRecords Limit 10000,
at most 5 calls/s per shard (Kinesis' limit, as Tributary), queue big enough not to stall reads.
"""

import argparse
import asyncio
import os
import resource
import sys
import time


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--stream", default="bench")
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDBENCH")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "x")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from kinesis import Consumer  # imported before the clock starts

    cpu0, t0 = cpu_seconds(), time.monotonic()
    deadline = t0 + args.timeout
    count = 0
    touched = 0
    async with Consumer(
        args.stream,
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        iterator_type="TRIM_HORIZON",
        record_limit=10_000,
        shard_fetch_rate=5,
        max_queue_size=20_000,
        idle_timeout=30.0,
        sleep_time_no_records=0.2,
    ) as consumer:
        while count < args.records and time.monotonic() < deadline:
            async for item in consumer:
                # The decoded JSON object: touch it so the work is not skipped.
                touched += len(item)
                count += 1
                if count >= args.records or time.monotonic() >= deadline:
                    break
        wall = time.monotonic() - t0
        cpu = cpu_seconds() - cpu0
    if count < args.records:
        print(f"python peer: only {count} of {args.records} records before the timeout", file=sys.stderr)
        sys.exit(1)
    per_m = cpu / (count / 1e6)
    peak = peak_rss_mib()
    print(
        f"python peer (async-kinesis Consumer, JSON): {count} records in {wall:.2f} s = {count / wall:.0f} records/s; "
        f"CPU {cpu:.2f} s ({per_m:.2f} s/M); peak RSS {peak:.1f} MiB"
    )
    print(
        f"RESULT python records={count} wall_s={wall:.3f} records_per_s={count / wall:.0f} "
        f"cpu_s={cpu:.3f} cpu_s_per_m={per_m:.3f} peak_rss_mib={peak:.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
