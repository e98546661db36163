"""`picokafka produce` beside `kcat -P` and the Java producer's ProducerPerformance, as a new user
runs them (issue 18): records from a file on stdin, the same -X settings for all three, one
process per run measured by /usr/bin/time (user + sys CPU, peak RSS, wall). Prints a Markdown
table per broker on stdout; progress on stderr; one JSON line per run to --raw.

  python3 cli_bench.py --picokafka BIN --java-tools DIR --kafka-env broker.env [--tansu-port PORT]
                       [--records N] [--rounds R] [--rows NAME,...] [--raw FILE] --work DIR
                       [--value-bytes B] [--partitions P] [--replication R]   # how cost grows
  python3 cli_bench.py --report FILE     # the tables again from the JSON lines of a run

Each run writes into a fresh topic (one partition), deleted once its end offset is read: a run
whose topic does not hold exactly the records sent is marked and left out of the medians.
Rounds are interleaved (every row and client once per round, the client order rotated), so that
the other load on the machine falls on all three alike.

The input: N lines of an 8-byte key, ':' and a 100-byte value of random capital letters (what
ProducerPerformance itself generates), split by -K ':'; the unkeyed row sends the values alone.
ProducerPerformance takes no stdin and sends no keys: it is given --payload-file with 10,000 of
the same values (it picks one at random per record), so that compression sees the same bytes.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

VALUE_BYTES = 100
PAYLOAD_LINES = 10_000

# (name, title, -X properties, keyed). The same properties go to all three clients.
ROWS = [
    ("defaults", "defaults", [], True),
    ("acks1", "acks=1", ["acks=1"], True),
    ("lz4", "linger 5 ms, LZ4, acks=1", ["linger.ms=5", "compression.type=lz4", "acks=1"], True),
    ("1mib", "linger 5 ms, 1 MiB batches, acks=1", ["linger.ms=5", "batch.size=1048576", "acks=1"], True),
    (
        "1mib-lz4",
        "linger 5 ms, 1 MiB batches, LZ4, acks=1",
        ["linger.ms=5", "batch.size=1048576", "compression.type=lz4", "acks=1"],
        True,
    ),
    ("zstd", "linger 5 ms, zstd, acks=1", ["linger.ms=5", "compression.type=zstd", "acks=1"], True),
    ("unkeyed", "defaults, unkeyed records", [], False),
    ("idempotent", "acks=all, idempotence", ["acks=all", "enable.idempotence=true"], True),
]
CLIENTS = ["picokafka", "kcat", "java"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def make_inputs(work, records, value_bytes=VALUE_BYTES):
    """The keyed and unkeyed inputs and the Java payload file, made once per record count and
    value size. The payload file holds at most 10,000 values and about 20 MB."""
    tag = "" if value_bytes == VALUE_BYTES else f"-{value_bytes}b"
    keyed = os.path.join(work, f"keyed-{records}{tag}.txt")
    unkeyed = os.path.join(work, f"unkeyed-{records}{tag}.txt")
    payload = os.path.join(work, f"payload{tag}.txt")
    payload_lines = max(1, min(PAYLOAD_LINES, records, 20_000_000 // value_bytes))
    if all(os.path.exists(p) for p in (keyed, unkeyed, payload)):
        return keyed, unkeyed, payload
    letters = bytes(65 + b % 26 for b in range(256))
    rnd = open("/dev/urandom", "rb")
    with open(keyed + ".tmp", "wb") as k, open(unkeyed + ".tmp", "wb") as u, open(payload, "wb") as p:
        step = max(1, min(10_000, 10_000_000 // value_bytes))
        for start in range(0, records, step):
            n = min(step, records - start)
            values = rnd.read(n * value_bytes).translate(letters)
            kbuf, ubuf = bytearray(), bytearray()
            for i in range(n):
                v = values[i * value_bytes : (i + 1) * value_bytes]
                kbuf += b"k%07d:" % (start + i) + v + b"\n"
                ubuf += v + b"\n"
            k.write(kbuf)
            u.write(ubuf)
            if start < payload_lines:
                p.write(ubuf[: (payload_lines - start) * (value_bytes + 1)])
    os.rename(keyed + ".tmp", keyed)
    os.rename(unkeyed + ".tmp", unkeyed)
    return keyed, unkeyed, payload


class Kafka:
    name = "kafka"

    def __init__(self, env_file):
        env = dict(l.split("=", 1) for l in open(env_file).read().splitlines() if "=" in l)
        self.bootstrap = env["KAFKA_PLAINTEXT"]

    def create(self, topic, partitions=1, replication=1):
        from confluent_kafka.admin import AdminClient, NewTopic

        a = AdminClient({"bootstrap.servers": self.bootstrap})
        a.create_topics([NewTopic(topic, partitions, replication)], operation_timeout=30)[topic].result(60)
        # Created is not yet led: wait for the leader, so no client meets LEADER_NOT_AVAILABLE.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            md = a.list_topics(topic, timeout=10).topics.get(topic)
            if md is not None and md.error is None and all(p.leader >= 0 for p in md.partitions.values()):
                return
            time.sleep(0.1)
        sys.exit(f"cli_bench: {topic} has no leader after 60 s")

    def delete(self, topic):
        delete_topic(self.bootstrap, topic)


class Tansu:
    name = "tansu"

    def __init__(self, port):
        self.bootstrap = f"127.0.0.1:{port}"
        self.port = port

    def create(self, topic, partitions=1, replication=1):
        subprocess.run([os.path.join(ROOT, "scripts", "tansu-topic"), topic, str(partitions), str(self.port)], check=True,
                       stdout=subprocess.DEVNULL)

    def delete(self, topic):
        try:
            delete_topic(self.bootstrap, topic)
        except Exception as e:  # memory storage: a topic left behind only costs memory
            log(f"  (tansu: could not delete {topic}: {e})")


def delete_topic(bootstrap, topic):
    """Deleted after its run: 48 runs of 110 MB each would otherwise stay on the broker's disk."""
    from confluent_kafka.admin import AdminClient

    a = AdminClient({"bootstrap.servers": bootstrap})  # kept until the answer: its end cancels the call
    a.delete_topics([topic], operation_timeout=30)[topic].result(60)


def end_offset(bootstrap, topic):
    """Records on the topic's partitions (high watermark minus log start, summed)."""
    from confluent_kafka import Consumer, TopicPartition

    from confluent_kafka import KafkaException

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "picokafka-bench"})
    try:
        partitions = c.list_topics(topic, timeout=30).topics[topic].partitions
        total = 0
        for p in partitions:
            # On a cluster, the broker asked may not know a new topic yet: ask again.
            for attempt in range(20):
                try:
                    low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)
                    break
                except KafkaException:
                    if attempt == 19:
                        raise
                    time.sleep(0.5)
            total += high - low
        return total
    finally:
        c.close()


def command(client, args, broker, topic, props, keyed, inputs, records):
    """The command line and its stdin file for one run."""
    keyed_file, unkeyed_file, payload = inputs
    x = [a for p in props for a in ("-X", p)]
    if client == "picokafka":
        cmd = [args.picokafka, "produce", "-b", broker.bootstrap, "-t", topic] + x
        return cmd + (["-K", ":"] if keyed else []), keyed_file if keyed else unkeyed_file
    if client == "kcat":
        cmd = ["kcat", "-P", "-b", broker.bootstrap, "-t", topic] + x
        return cmd + (["-K", ":"] if keyed else []), keyed_file if keyed else unkeyed_file
    # kafka-producer-perf-test.sh's heap (-Xmx512M) and GC settings of kafka-run-class.sh.
    cmd = ["java", "-Xmx512M", "-XX:+UseG1GC", "-Djava.awt.headless=true",
           f"-Dlog4j2.configurationFile={os.path.join(HERE, 'log4j2.properties')}",
           "-cp", f"{args.java_tools}/*", "org.apache.kafka.tools.ProducerPerformance",
           "--topic", topic, "--num-records", str(records), "--throughput", "-1",
           "--payload-file", payload, "--command-property", f"bootstrap.servers={broker.bootstrap}"] + props
    return cmd, None


def run_one(client, args, broker, row, rnd, inputs):
    name, _, props, keyed = row
    topic = f"bench-{name}-{client}-{rnd}-{os.getpid()}"
    broker.create(topic, args.partitions, args.replication)
    cmd, stdin = command(client, args, broker, topic, props, keyed, inputs, args.records)
    timing = os.path.join(args.work, "time.txt")
    out = os.path.join(args.work, f"{client}.log")
    load = os.getloadavg()[0]
    with open(stdin or os.devnull, "rb") as i, open(out, "wb") as o:
        rc = subprocess.run(["/usr/bin/time", "-o", timing, "-f", "%U %S %M %e"] + cmd, stdin=i, stdout=o,
                            stderr=subprocess.STDOUT).returncode
    user, sys_, rss_kib, wall = open(timing).read().split()[-4:]
    got = end_offset(broker.bootstrap, topic)
    broker.delete(topic)
    r = {
        "broker": broker.name, "row": name, "client": client, "round": rnd, "records": args.records,
        "exit": rc, "arrived": got, "cpu_s": float(user) + float(sys_), "user_s": float(user),
        "sys_s": float(sys_), "rss_mib": int(rss_kib) / 1024, "wall_s": float(wall), "load1": load,
        "partitions": args.partitions, "value_bytes": args.value_bytes,
        "brokers": len(broker.bootstrap.split(",")),
    }
    r["ok"] = rc == 0 and got == args.records
    if not r["ok"]:
        log(f"  {client} {name} round {rnd}: exit {rc}, {got} of {args.records} records arrived; "
            f"output ({out}):\n" + open(out, errors="replace").read()[-2000:])
    return r


def table(results, broker, rows, clients, records, rounds):
    mine = [r for r in results if r["broker"] == broker]
    loads = [r["load1"] for r in mine]
    print()
    first = mine[0]
    value_bytes, partitions, nodes = (first.get(k, d) for k, d in (("value_bytes", 100), ("partitions", 1), ("brokers", 1)))
    print(f"#### {broker} · {records:,} records of {value_bytes:,} bytes (8-byte key) from stdin, "
          f"{partitions} partition(s), {nodes} broker(s), {rounds} round(s), "
          f"load average {statistics.median(loads):.1f} ({min(loads):.1f}–{max(loads):.1f})")
    print()
    print("| setting | client | CPU s | CPU µs/record | peak RSS MiB | wall s | records/s | CPU pk/x | RSS pk/x | records/s pk/x |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, title, _, _ in rows:
        med = {}
        for client in clients:
            runs = [r for r in mine if r["row"] == name and r["client"] == client]
            good = [r for r in runs if r["ok"]]
            if not good:
                med[client] = None
                continue
            m = {k: statistics.median(r[k] for r in good) for k in ("cpu_s", "rss_mib", "wall_s")}
            m["rate"] = statistics.median(records / r["wall_s"] for r in good)
            m["bad"] = len(runs) - len(good)
            med[client] = m
        pk = med.get("picokafka")
        for client in clients:
            m = med[client]
            label = {"picokafka": "picokafka", "kcat": "kcat -P", "java": "Java ProducerPerformance"}[client]
            if m is None:
                print(f"| {title} | {label} | no run delivered every record | | | | | | | |")
                continue
            bad = f" ({m['bad']} run(s) lost records, left out)" if m["bad"] else ""
            ratios = " | | "
            if client != "picokafka" and pk is not None:
                ratios = (f"{pk['cpu_s'] / m['cpu_s']:.2f}× | {pk['rss_mib'] / m['rss_mib']:.2f}× | "
                          f"{pk['rate'] / m['rate']:.2f}×")
            elif client != "picokafka":
                ratios = "– | – | –"
            print(f"| {title if client == clients[0] else ''} | {label}{bad} | {m['cpu_s']:.2f} | "
                  f"{m['cpu_s'] / records * 1e6:.2f} | "
                  f"{m['rss_mib']:.1f} | {m['wall_s']:.2f} | {m['rate']:,.0f} | {ratios} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", help="print the tables of the runs in this JSON-lines file, run nothing")
    ap.add_argument("--picokafka")
    ap.add_argument("--java-tools", help="directory of the kafka-tools jars")
    ap.add_argument("--kafka-env", help="broker.env of a running Apache Kafka (scripts/kafka-start)")
    ap.add_argument("--tansu-port", type=int, help="port of a running Tansu (scripts/tansu-start)")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--value-bytes", type=int, default=VALUE_BYTES, help="bytes per value (default 100)")
    ap.add_argument("--partitions", type=int, default=1, help="partitions of each run's topic (default 1)")
    ap.add_argument("--replication", type=int, default=1, help="replication factor of each topic (default 1)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", help="comma-separated row names (default: all): " + ",".join(r[0] for r in ROWS))
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("--work", help="directory for the inputs and logs")
    ap.add_argument("--raw", help="append one JSON line per run here")
    args = ap.parse_args()
    rows = [r for r in ROWS if not args.rows or r[0] in args.rows.split(",")]
    clients = args.clients.split(",")
    if args.report:
        results = [json.loads(line) for line in open(args.report)]
        clients = [c for c in clients if any(r["client"] == c for r in results)]
        rows = [r for r in rows if any(x["row"] == r[0] for x in results)]
        for broker in dict.fromkeys(r["broker"] for r in results):
            rounds = len({r["round"] for r in results if r["broker"] == broker})
            table(results, broker, rows, clients, results[0]["records"], rounds)
        return
    if not (args.picokafka and args.java_tools and args.work):
        ap.error("--picokafka, --java-tools and --work are needed to run")
    os.makedirs(args.work, exist_ok=True)
    brokers = ([Kafka(args.kafka_env)] if args.kafka_env else []) + ([Tansu(args.tansu_port)] if args.tansu_port else [])
    inputs = make_inputs(args.work, args.records, args.value_bytes)
    results = []
    raw = open(args.raw, "a") if args.raw else None
    for rnd in range(args.rounds):
        for broker in brokers:
            for i, row in enumerate(rows):
                # Rotated per row and round: no client always runs first after another's run.
                k = (rnd + i) % len(clients)
                for client in clients[k:] + clients[:k]:
                    r = run_one(client, args, broker, row, rnd, inputs)
                    log(f"{broker.name} round {rnd} {row[0]:>10} {client:>9}: cpu {r['cpu_s']:.2f} s, "
                        f"rss {r['rss_mib']:.0f} MiB, wall {r['wall_s']:.2f} s, {r['arrived']} arrived, "
                        f"load {r['load1']:.1f}")
                    results.append(r)
                    if raw:
                        raw.write(json.dumps(r) + "\n")
                        raw.flush()
    for broker in brokers:
        table(results, broker.name, rows, clients, args.records, args.rounds)


if __name__ == "__main__":
    main()
