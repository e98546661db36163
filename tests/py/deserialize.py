#!/usr/bin/env python3
"""Decode record payloads with independent deserializers and print them as JSON.

    deserialize.py < lines

Each input line is `FORMAT BASE64`; each output line is the decoded value as JSON:
  string  confluent_kafka.serialization.StringDeserializer (UTF-8)
  int     confluent_kafka.serialization.IntegerDeserializer (4 bytes, big-endian)
  double  confluent_kafka.serialization.DoubleDeserializer (8 bytes, big-endian)
  json    json.loads
  avro:SCHEMA_FILE:ID   Confluent's wire format (magic 0, schema id ID), then an Avro datum read
                        by fastavro.schemaless_reader with the schema in SCHEMA_FILE
Exits 1 on the first payload that does not decode.
"""

import base64
import io
import json
import struct
import sys

from confluent_kafka.serialization import (
    DoubleDeserializer, IntegerDeserializer, StringDeserializer)


def main():
    string, integer, double = StringDeserializer("utf_8"), IntegerDeserializer(), DoubleDeserializer()
    schemas = {}
    for line in sys.stdin:
        fmt, data = line.split()
        raw = base64.b64decode(data)
        if fmt == "string":
            value = string(raw, None)
        elif fmt == "int":
            value = integer(raw, None)
        elif fmt == "double":
            value = double(raw, None)
        elif fmt == "json":
            value = json.loads(raw)
        elif fmt.startswith("avro:"):
            import fastavro
            _, path, want_id = fmt.split(":")
            if path not in schemas:
                with open(path) as f:
                    schemas[path] = fastavro.parse_schema(json.load(f))
            magic, schema_id = struct.unpack(">bI", raw[:5])
            if magic != 0 or schema_id != int(want_id):
                print(f"bad Schema Registry header: magic {magic}, id {schema_id}", file=sys.stderr)
                sys.exit(1)
            buf = io.BytesIO(raw[5:])
            value = fastavro.schemaless_reader(buf, schemas[path])
            if buf.read():
                print("bytes left after the Avro datum", file=sys.stderr)
                sys.exit(1)
        else:
            print(f"unknown format {fmt}", file=sys.stderr)
            sys.exit(2)
        print(json.dumps(value, sort_keys=True))


if __name__ == "__main__":
    main()
