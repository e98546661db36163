#!/usr/bin/env python3
"""Self-check of the test bed: produce known records with confluent-kafka.

    produce_check.py --bootstrap 127.0.0.1:PORT --topic T [--compression none|lz4]

Sends a few records with keys, headers and explicit timestamps (plus a null
key, a null value, a null header value and an empty value) and prints them on
stdout in consume.py's JSON format, with the partition and offset from each
delivery report, sorted the same way. So:

    diff <(produce_check.py ...) <(consume.py ... --expect 6)

proves that the broker and the consumer round-trip every field.
"""

import argparse
import json
import sys

sys.dont_write_bytecode = True  # keep tests/py free of __pycache__
from consume import record  # noqa: E402  (same JSON shape as the consumer)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--compression", default="none", choices=["none", "lz4"])
    args = ap.parse_args()

    from confluent_kafka import Producer

    base_ts = 1_700_000_000_000  # explicit CreateTime, far from "now"
    records = [
        # (key, value, headers, timestamp, partition or None)
        (b"k0", b"v0", [("h1", b"a"), ("h2", b"bb")], base_ts, None),
        (b"k1", b"v1", [("dup", b"1"), ("dup", b"2")], base_ts + 1, None),
        (None, b"null key", [("only", b"x")], base_ts + 2, 1),
        (b"k3", None, [], base_ts + 3, 2),
        (b"k4", b"", [("nullval", None)], base_ts + 4, 0),
        (b"\x00\xff binary", bytes(range(256)), [("bin", b"\x00\x01")], base_ts + 5, None),
    ]
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "compression.type": args.compression,
        "linger.ms": 5,
    })
    out, errors = [], []

    for key, value, headers, ts, partition in records:
        def on_delivery(err, msg, key=key, value=value, headers=headers, ts=ts):
            if err is not None:
                errors.append(f"delivery failed: {err}")
                return
            out.append(record(msg.topic(), msg.partition(), msg.offset(), key, value,
                              headers, ts, 0))
        kw = {"partition": partition} if partition is not None else {}
        producer.produce(args.topic, value=value, key=key, headers=headers, timestamp=ts,
                         on_delivery=on_delivery, **kw)
    left = producer.flush(30)
    if left or errors or len(out) != len(records):
        print(f"produce_check.py: {left} undelivered, errors: {errors}", file=sys.stderr)
        return 1
    out.sort(key=lambda r: (r["topic"], r["partition"], r["offset"]))
    for r in out:
        print(json.dumps(r, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
