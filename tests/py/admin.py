"""Admin operations on Apache Kafka through confluent-kafka's AdminClient (a client nobody here
wrote), for the scripts and tests:

  admin.py create-topic NAME PARTITIONS BOOTSTRAP [RF [CONFIG=VALUE ...]]
  admin.py version BOOTSTRAP        the broker's software name and version, from ApiVersions
  admin.py leader TOPIC PARTITION BOOTSTRAP    the id of the partition's leader
  admin.py leaders TOPIC BOOTSTRAP     the leader of every partition, one line each, in order
  admin.py wait-healthy BOOTSTRAP BROKERS [TIMEOUT]
        wait until BROKERS brokers are in the metadata and every partition of every topic has
        its whole replica set in sync, then elect preferred leaders and wait until each
        partition is led by its first replica (a cluster back in its balanced shape)
  admin.py end-offsets TOPIC BOOTSTRAP   the number of records on the log of every partition
        (high watermark minus log start), one "PARTITION COUNT" line each, then "total N"
  admin.py add-acl BOOTSTRAP PRINCIPAL TOPIC OPERATIONS [KEY=VALUE ...]
        allow PRINCIPAL (User:alice) the comma-separated OPERATIONS (WRITE,DESCRIBE) on the
        literal topic TOPIC from any host, then wait until the broker's authorizer answers with
        them; KEY=VALUE are the admin client's own settings (security.protocol=SASL_PLAINTEXT
        sasl.mechanism=PLAIN sasl.username=admin sasl.password=admin-secret)
  admin.py group-offsets GROUP TOPIC PARTITIONS BOOTSTRAP   the group's committed offset of each
        of the topic's first PARTITIONS partitions, one "PARTITION OFFSET" line each (-1001: none),
        as the group coordinator answers OffsetFetch with require_stable (KIP-447: it waits for
        a pending transactional commit instead of answering around it)
  admin.py delete-scram BOOTSTRAP USER MECHANISM [KEY=VALUE ...]
        delete USER's SCRAM-SHA-256 or SCRAM-SHA-512 credential (a revoked login), then wait
        until the broker no longer describes it
"""
import sys
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def admin(bootstrap, props=()):
    """An AdminClient for BOOTSTRAP; PROPS are KEY=VALUE client settings (TLS, SASL)."""
    return AdminClient({"bootstrap.servers": bootstrap, **dict(p.split("=", 1) for p in props)})


def add_acl(bootstrap, principal, topic, operations, *props):
    from confluent_kafka.admin import (
        AclBinding, AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType,
        ResourceType)

    try:
        ops = [AclOperation[o.strip().upper()] for o in operations.split(",") if o.strip()]
    except KeyError as e:
        sys.exit(f"admin.py add-acl: unknown operation {e} (WRITE, DESCRIBE, READ, ...)")
    a = admin(bootstrap, props)
    bindings = [
        AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal, "*", op,
                   AclPermissionType.ALLOW)
        for op in ops
    ]
    for binding, future in a.create_acls(bindings, request_timeout=30).items():
        try:
            future.result(60)
        except Exception as e:
            sys.exit(f"admin.py add-acl: {binding}: {e}")
    # CreateAcls answers once the controller committed them; the broker's authorizer applies
    # them as it replays the metadata log. DescribeAcls is the authorizer's own view.
    want = {(principal, op) for op in ops}
    filt = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None, None,
                            AclOperation.ANY, AclPermissionType.ANY)
    deadline, seen = time.monotonic() + 30, set()
    while time.monotonic() < deadline:
        try:
            seen = {(b.principal, b.operation) for b in a.describe_acls(filt, request_timeout=10).result(15)}
        except Exception as e:
            seen = {("error", str(e))}
        if want <= seen:
            return
        time.sleep(0.1)
    sys.exit(f"admin.py add-acl: the broker describes {seen} on {topic!r}, not {want}")


def delete_scram(bootstrap, user, mechanism, *props):
    from confluent_kafka.admin import ScramMechanism, UserScramCredentialDeletion

    try:
        mech = ScramMechanism[mechanism.replace("-", "_").upper()]
    except KeyError:
        sys.exit(f"admin.py delete-scram: unknown mechanism {mechanism!r} (SCRAM-SHA-256, SCRAM-SHA-512)")
    a = admin(bootstrap, props)
    for name, future in a.alter_user_scram_credentials([UserScramCredentialDeletion(user, mech)]).items():
        try:
            future.result(60)
        except Exception as e:
            sys.exit(f"admin.py delete-scram {name} {mechanism}: {e}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            desc = a.describe_user_scram_credentials([user]).result(15)[user]
            left = [i.mechanism for i in desc.scram_credential_infos]
        except Exception:  # RESOURCE_NOT_FOUND once the user has no credential left
            left = []
        if mech not in left:
            return
        time.sleep(0.1)
    sys.exit(f"admin.py delete-scram: {user} still has a {mechanism} credential")


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


def leaders(topic, bootstrap):
    md = admin(bootstrap).list_topics(topic, timeout=10).topics[topic]
    for p in sorted(md.partitions):
        print(md.partitions[p].leader)


def unhealthy(md, brokers):
    """Why the cluster is not (yet) healthy, or None."""
    if len(md.brokers) != brokers:
        return f"{len(md.brokers)} of {brokers} brokers in the metadata"
    for name, t in md.topics.items():
        if t.error is not None:
            return f"topic {name}: {t.error}"
        for p in t.partitions.values():
            if p.error is not None or p.leader < 0:
                return f"{name}[{p.id}]: leader {p.leader}, {p.error}"
            if sorted(p.isrs) != sorted(p.replicas):
                return f"{name}[{p.id}]: ISR {p.isrs} of replicas {p.replicas}"
    return None


def not_preferred(md):
    return [
        TopicPartition(name, p.id)
        for name, t in md.topics.items()
        for p in t.partitions.values()
        if p.replicas and p.leader != p.replicas[0]
    ]


def wait_healthy(bootstrap, brokers, timeout="180"):
    from confluent_kafka import ElectionType

    a = admin(bootstrap)
    brokers, start = int(brokers), time.monotonic()
    deadline = start + float(timeout)
    why, elected = "no metadata yet", False
    while time.monotonic() < deadline:
        try:
            md = a.list_topics(timeout=5)
        except Exception as e:  # a broker still starting: try again
            why = f"metadata: {e}"
            time.sleep(0.5)
            continue
        why = unhealthy(md, brokers)
        if why is None:
            moves = not_preferred(md)
            if not moves:
                print(f"admin.py: cluster healthy after {time.monotonic() - start:.1f} s", file=sys.stderr)
                return
            why = f"{len(moves)} partitions not led by their preferred replica"
            if not elected:
                try:
                    a.elect_leaders(ElectionType.PREFERRED, moves).result(30)
                except Exception as e:  # ELECTION_NOT_NEEDED and the like: look again
                    why += f" (election: {e})"
                elected = True
        else:
            elected = False
        time.sleep(0.5)
    sys.exit(f"admin.py: cluster not healthy after {timeout} s: {why}")


def end_offsets(topic, bootstrap, timeout="60"):
    # Right after a fault heals, a partition's leader may still be moving and a watermark query
    # can time out or meet NOT_LEADER: ask again until the deadline, then name the last error.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "picokafka-end-offsets"})
    deadline = time.monotonic() + float(timeout)
    try:
        md = None
        while md is None:
            try:
                md = c.list_topics(topic, timeout=10).topics[topic]
                if md.error is not None or not md.partitions:
                    raise RuntimeError(f"metadata of {topic!r}: {md.error}")
            except Exception as e:
                md = None
                if time.monotonic() > deadline:
                    sys.exit(f"admin.py end-offsets {topic}: {e}")
                time.sleep(0.5)
        total = 0
        for p in sorted(md.partitions):
            while True:
                try:
                    low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                    break
                except Exception as e:
                    if time.monotonic() > deadline:
                        sys.exit(f"admin.py end-offsets {topic}[{p}]: {e}")
                    time.sleep(0.5)
            print(p, high - low)
            total += high - low
        print("total", total)
    finally:
        c.close()


def group_offsets(group, topic, partitions, bootstrap):
    # isolation.level=read_committed makes librdkafka's OffsetFetch require stable offsets.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed",
                  "enable.auto.commit": False})
    try:
        for tp in c.committed([TopicPartition(topic, p) for p in range(int(partitions))], timeout=30):
            if tp.error is not None:
                sys.exit(f"admin.py group-offsets {group} {topic}[{tp.partition}]: {tp.error}")
            print(tp.partition, tp.offset)
    finally:
        c.close()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "create-topic":
        create_topic(*args)
    elif cmd == "leader":
        leader(*args)
    elif cmd == "leaders":
        leaders(*args)
    elif cmd == "wait-healthy":
        wait_healthy(*args)
    elif cmd == "end-offsets":
        end_offsets(*args)
    elif cmd == "add-acl":
        add_acl(*args)
    elif cmd == "delete-scram":
        delete_scram(*args)
    elif cmd == "group-offsets":
        group_offsets(*args)
    else:
        sys.exit(f"admin.py: unknown command {cmd!r}")


main()
