"""Admin operations on Apache Kafka through confluent-kafka's AdminClient (a client nobody here
wrote), for the scripts and tests:

  admin.py create-topic NAME PARTITIONS BOOTSTRAP [RF [CONFIG=VALUE ...]]
  admin.py version BOOTSTRAP        the broker's software name and version, from ApiVersions
  admin.py leader TOPIC PARTITION BOOTSTRAP    the id of the partition's leader
"""
import sys
import time

from confluent_kafka.admin import AdminClient, NewTopic


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(name, partitions, bootstrap, rf="1", *configs):
    a = admin(bootstrap)
    conf = dict(c.split("=", 1) for c in configs)
    futures = a.create_topics(
        [NewTopic(name, int(partitions), int(rf), config=conf)], operation_timeout=30, request_timeout=30
    )
    try:
        futures[name].result(60)
    except Exception as e:  # the KafkaException names the cause (TOPIC_ALREADY_EXISTS, ...)
        sys.exit(f"kafka-topic: could not create {name!r} ({partitions} partitions, RF {rf}): {e}")
    # CreateTopics returns before every partition has a leader everywhere: wait for it, so the
    # first produce does not meet LEADER_NOT_AVAILABLE.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        md = a.list_topics(name, timeout=10).topics.get(name)
        if md is not None and md.error is None and len(md.partitions) == int(partitions):
            if all(p.leader >= 0 and p.error is None for p in md.partitions.values()):
                return
        time.sleep(0.1)
    sys.exit(f"kafka-topic: {name!r} has no leader for every partition after 60 s")


def leader(topic, partition, bootstrap):
    md = admin(bootstrap).list_topics(topic, timeout=10).topics[topic]
    print(md.partitions[int(partition)].leader)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "create-topic":
        create_topic(*args)
    elif cmd == "leader":
        leader(*args)
    else:
        sys.exit(f"admin.py: unknown command {cmd!r}")


main()
