"""KPL-aggregates records for tests, using aws_kinesis_agg from .peers/venv.

stdin:  {"records": [{"pk": "...", "data": "<base64>"}, ...]}
stdout: {"records": [{"pk": "...", "data": "<base64>"}, ...]}   one per aggregated record
"""
import base64
import json
import sys

from aws_kinesis_agg.aggregator import RecordAggregator


def main() -> None:
    request = json.load(sys.stdin)
    out = []
    agg = RecordAggregator()

    def flush(record) -> None:
        if record is not None and record.get_num_user_records() > 0:
            pk, _ehk, data = record.get_contents()
            out.append({"pk": pk, "data": base64.b64encode(data).decode("ascii")})

    for rec in request["records"]:
        data = base64.b64decode(rec["data"])
        flush(agg.add_user_record(rec["pk"], data))
    flush(agg.clear_and_get())
    json.dump({"records": out}, sys.stdout)


if __name__ == "__main__":
    main()
