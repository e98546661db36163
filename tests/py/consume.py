#!/usr/bin/env python3
"""Read records back with an independent Kafka client and print them as JSON.

    consume.py --bootstrap 127.0.0.1:PORT --topic T [--topic T2 ...] --expect N
               [--timeout S] [--grace S] [--client confluent|kafka-python]
               [--property KEY=VALUE ...]   (extra confluent-kafka settings: TLS, SASL)

Run it with the venv from scripts/py-setup. Every partition of every topic is
assigned directly (no consumer group, so no rebalance delay) and read from the
beginning, with CRC checks on: a broker accepting our bytes proves little
(Tansu's memory storage does not check CRCs); a foreign consumer decoding them
does.

Stops once N records are read, then keeps polling for --grace seconds to catch
extra ones. Prints one JSON line per record read, sorted by (topic, partition,
offset), so the output of the two clients can be compared byte for byte:

    {"topic", "partition", "offset", "key", "value", "headers": [[name, value], ...],
     "timestamp": ms, "timestamp_type": 0 CreateTime | 1 LogAppendTime | -1 none}

key, value and header values are base64, or null for a null field. Exit 0 if
exactly N records were read; 1 otherwise (message on stderr, records read
still printed); 2 on a client error such as a CRC failure or a failed
authentication (the client's message on stderr).

The consumer authenticates like any client: e.g. --property security.protocol=SASL_SSL
--property ssl.ca.location=ca.pem --property sasl.mechanism=SCRAM-SHA-512
--property sasl.username=alice --property sasl.password=alice-secret, or for OAUTHBEARER
--property enable.sasl.oauthbearer.unsecure.jwt=true --property sasl.oauthbearer.config=principal=alice.
"""

import argparse
import base64
import json
import sys
import time


def b64(data):
    return None if data is None else base64.b64encode(data).decode("ascii")


def record(topic, partition, offset, key, value, headers, ts, ts_type):
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": b64(key),
        "value": b64(value),
        "headers": [[name, b64(v)] for name, v in (headers or [])],
        "timestamp": ts,
        "timestamp_type": ts_type,
    }


class ClientError(Exception):
    pass


def consume_confluent(args, expect, deadline, grace):
    from confluent_kafka import (
        OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME,
        Consumer, KafkaError, KafkaException, TopicPartition)

    ts_types = {TIMESTAMP_CREATE_TIME: 0, TIMESTAMP_LOG_APPEND_TIME: 1}
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        # Required by the Python binding even though we never join or commit.
        "group.id": "picokafka-consume",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "check.crcs": True,
        "enable.partition.eof": False,
        "allow.auto.create.topics": False,
        **dict(p.split("=", 1) for p in args.property),
    })
    try:
        parts = []
        for topic in args.topic:
            try:
                meta = consumer.list_topics(topic, timeout=max(1.0, deadline - time.monotonic()))
            except KafkaException as e:  # no broker reachable: refused, TLS or SASL failed
                raise ClientError(f"metadata for {topic!r}: {e}") from e
            tmeta = meta.topics.get(topic)
            if tmeta is None or tmeta.error is not None or not tmeta.partitions:
                raise ClientError(f"topic {topic!r} not found: {tmeta and tmeta.error}")
            parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(tmeta.partitions)]
        consumer.assign(parts)

        out = []
        end = deadline if expect > 0 else time.monotonic() + grace
        while time.monotonic() < end:
            msg = consumer.poll(timeout=min(0.2, max(0.0, end - time.monotonic())))
            if msg is None:
                continue
            if msg.error():
                # CRC mismatches and undecodable batches arrive here.
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise ClientError(f"consumer error on {msg.topic()}[{msg.partition()}]: {msg.error()}")
            ts_type, ts = msg.timestamp()
            out.append(record(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(),
                              msg.headers(), ts, ts_types.get(ts_type, -1)))
            if len(out) >= expect and end == deadline:
                end = time.monotonic() + grace  # look for records beyond N
        return out
    finally:
        consumer.close()


def consume_kafka_python(args, expect, deadline, grace):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,  # plain assign: no coordinator, no commits
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        check_crcs=True,
        allow_auto_create_topics=False,
    )
    try:
        parts = []
        for topic in args.topic:
            # partitions_for_topic fetches metadata if needed (blocking).
            ps = consumer.partitions_for_topic(topic)
            if not ps:
                raise ClientError(f"topic {topic!r} not found")
            parts += [TopicPartition(topic, p) for p in sorted(ps)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)

        out = []
        end = deadline if expect > 0 else time.monotonic() + grace
        while time.monotonic() < end:
            timeout_ms = int(min(0.2, max(0.0, end - time.monotonic())) * 1000)
            try:
                batches = consumer.poll(timeout_ms=timeout_ms)
            except KafkaError as e:  # CorruptRecordError on a CRC mismatch
                raise ClientError(f"consumer error: {e!r}") from e
            for tp, records in batches.items():
                for r in records:
                    # kafka-python's timestamp_type is the batch attribute bit
                    # (0 CreateTime, 1 LogAppendTime), same as our convention.
                    out.append(record(tp.topic, tp.partition, r.offset, r.key, r.value,
                                      r.headers, r.timestamp, r.timestamp_type))
            if len(out) >= expect and end == deadline:
                end = time.monotonic() + grace
        return out
    finally:
        consumer.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True, help="host:port")
    ap.add_argument("--topic", required=True, action="append", help="repeatable")
    ap.add_argument("--expect", required=True, type=int, help="number of records expected")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to reach N (default 30)")
    ap.add_argument("--grace", type=float, default=1.0,
                    help="seconds to keep polling after N, to catch extras (default 1)")
    ap.add_argument("--client", choices=["confluent", "kafka-python"], default="confluent")
    ap.add_argument("--property", action="append", default=[],
                    help="KEY=VALUE for the confluent-kafka consumer (repeatable)")
    args = ap.parse_args()

    deadline = time.monotonic() + args.timeout
    consume = consume_confluent if args.client == "confluent" else consume_kafka_python
    try:
        out = consume(args, args.expect, deadline, args.grace)
    except ClientError as e:
        print(f"consume.py ({args.client}): {e}", file=sys.stderr)
        return 2

    out.sort(key=lambda r: (r["topic"], r["partition"], r["offset"]))
    for r in out:
        print(json.dumps(r, separators=(",", ":")))
    if len(out) != args.expect:
        why = "timed out" if len(out) < args.expect else "read more than expected"
        print(f"consume.py ({args.client}): {why}: read {len(out)} records, expected {args.expect}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
