#!/usr/bin/env python3
"""Self-check of the test bed: consume.py must reject a batch with a bad CRC.

    crc_check.py --bootstrap 127.0.0.1:PORT --topic T   (T: an existing, empty topic)

Tansu's memory storage stores batches without checking their CRC, so the
foreign consumer is the only CRC check our produced bytes get. This sends one
good and one corrupted RecordBatch to partition 0 with a raw Produce v3
request, then runs consume.py with each client and expects it to fail with a
CRC error (exit 2). Prints one line per client; exit 0 if both caught it.
"""

import argparse
import os
import socket
import struct
import subprocess
import sys

from kafka.record.default_records import DefaultRecordBatchBuilder


def batch(value, corrupt):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    b.append(0, timestamp=1_700_000_000_000, key=b"k", value=value, headers=[])
    data = bytearray(b.build())
    if corrupt:
        data[-1] ^= 0xFF  # last byte of the value: the stored CRC-32C no longer matches
    return bytes(data)


def produce_v3(host, port, topic, records):
    """Raw Produce v3 (acks=1) to partition 0; returns the partition error code."""
    def s16(x):
        return struct.pack(">h", len(x)) + x
    req = (struct.pack(">hhi", 0, 3, 1) + s16(b"crc_check") + struct.pack(">hhi", -1, 1, 5000)
           + struct.pack(">i", 1) + s16(topic.encode()) + struct.pack(">ii", 1, 0)
           + struct.pack(">i", len(records)) + records)
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(req)) + req)
        f = s.makefile("rb")
        resp = f.read(struct.unpack(">i", f.read(4))[0])
    # corr(4) topics(4) name(2+len) partitions(4) partition(4) error(2)
    at = 4 + 4 + 2 + len(topic) + 4 + 4
    return struct.unpack(">h", resp[at:at + 2])[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    args = ap.parse_args()
    host, port = args.bootstrap.rsplit(":", 1)

    for corrupt in (False, True):
        err = produce_v3(host, int(port), args.topic, batch(b"crc test", corrupt))
        if err != 0:
            sys.exit(f"crc_check.py: produce (corrupt={corrupt}) got error code {err}")

    consume = os.path.join(os.path.dirname(os.path.abspath(__file__)), "consume.py")
    ok = True
    for client in ("confluent", "kafka-python"):
        p = subprocess.run([sys.executable, consume, "--bootstrap", args.bootstrap,
                            "--topic", args.topic, "--expect", "2", "--timeout", "10",
                            "--client", client], capture_output=True, text=True)
        caught = p.returncode == 2 and "crc" in p.stderr.lower()
        ok &= caught
        print(f"{client}: {'caught' if caught else 'MISSED'} (exit {p.returncode}): {p.stderr.strip()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
