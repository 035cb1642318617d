#!/usr/bin/env python3
"""Tiny Kinesis helper for the demo, run with the peers' venv (boto3).

    kinesis_tool.py ENDPOINT create STREAM SHARDS     create and wait until ACTIVE
    kinesis_tool.py ENDPOINT put STREAM < lines       one record per stdin line (key = "user" field)
    kinesis_tool.py ENDPOINT put-bytes STREAM HEX     one raw record (for a bad-record example)
    kinesis_tool.py ENDPOINT read STREAM              every record of every shard: "KEY DATA" lines
"""
import json
import sys
import time

import boto3

endpoint, command, stream = sys.argv[1], sys.argv[2], sys.argv[3]
kinesis = boto3.client(
    "kinesis",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="AKIDDEMO0000000000",
    aws_secret_access_key="demo-secret",
)

if command == "create":
    kinesis.create_stream(StreamName=stream, ShardCount=int(sys.argv[4]))
    deadline = time.time() + 30
    while kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        if time.time() > deadline:
            sys.exit(f"stream {stream} did not become ACTIVE in 30 s")
        time.sleep(0.1)
elif command == "put":
    lines = [line.strip() for line in sys.stdin if line.strip()]
    for i in range(0, len(lines), 500):
        chunk = lines[i : i + 500]
        records = [{"Data": line.encode(), "PartitionKey": str(json.loads(line).get("user", i))} for line in chunk]
        out = kinesis.put_records(StreamName=stream, Records=records)
        if out["FailedRecordCount"]:
            sys.exit(f"{out['FailedRecordCount']} records failed")
    print(f"put {len(lines)} records into {stream}")
elif command == "put-bytes":
    kinesis.put_record(StreamName=stream, Data=bytes.fromhex(sys.argv[4]), PartitionKey="bad")
elif command == "read":
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            out = kinesis.get_records(ShardIterator=it, Limit=10000)
            for r in out["Records"]:
                print(r["PartitionKey"], r["Data"].decode())
            it = out.get("NextShardIterator") if out["Records"] else None
else:
    sys.exit(f"unknown command {command}")
