"""Proves the test broker runs transactions, with a client nobody here wrote: confluent-kafka's
transactional producer commits one transaction of COMMITTED records and aborts one of ABORTED
records on TOPIC. The caller then reads back with both isolation levels.

    txn_probe.py BOOTSTRAP TOPIC COMMITTED ABORTED
"""
import sys

from confluent_kafka import Producer

bootstrap, topic, committed, aborted = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"probe-{topic}", "linger.ms": 0})
p.init_transactions(30)
p.begin_transaction()
for i in range(committed):
    p.produce(topic, value=f"committed-{i}".encode())
p.commit_transaction(30)
p.begin_transaction()
for i in range(aborted):
    p.produce(topic, value=f"aborted-{i}".encode())
p.flush(30)
p.abort_transaction(30)
