#!/usr/bin/env python3
"""make_parquet_fixtures.py — Parquet files written by pyarrow, and the JSONL of the
same rows, for tests/test_parquet.c and tests/t_parquet.sh.

Run by hand (pyarrow 26.0.1 made the committed files):
    python3 tests/oracle/make_parquet_fixtures.py tests/oracle/fixtures/parquet

Each NAME.parquet has NAME.jsonl beside it: one compact JSON object per row, keys in
schema order, as cherry's reader yields them (LIST -> array, struct -> object, MAP ->
object, missing -> null).  The cases cover every codec, dictionary on and off, data
pages v1 and v2, nulls, nested list<struct>, several row groups and small pages, and
the DELTA_* / BYTE_STREAM_SPLIT encodings.
"""
import datetime
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

out = sys.argv[1] if len(sys.argv) > 1 else "tests/oracle/fixtures/parquet"
os.makedirs(out, exist_ok=True)

msg = pa.struct([("role", pa.string()), ("content", pa.string())])


def chat_rows(n):
    rows = []
    for i in range(n):
        conv = [{"role": "user", "content": f"question {i} ü"}]
        if i % 3:
            conv.append({"role": "assistant", "content": f"answer {i} " + "x" * (i % 7)})
        rows.append({
            "id": i if i % 5 else None,
            "prompt": f"prompt {i}" if i % 4 != 1 else None,
            "chosen": conv + [{"role": "assistant", "content": f"good {i}"}],
            "rejected": [] if i % 6 == 5 else conv + [{"role": "assistant", "content": None if i % 8 == 3 else f"bad {i}"}],
            "score": (i * 0.25) if i % 7 else None,
            "flag": (i % 2 == 0) if i % 9 else None,
            "tags": None if i % 10 == 4 else [f"t{j}" for j in range(i % 4)],
            "meta": None if i % 11 == 2 else {"source": "s" + str(i % 3), "n": i * 1000003},
        })
    return rows


schema = pa.schema([
    ("id", pa.int64()), ("prompt", pa.string()), ("chosen", pa.list_(msg)), ("rejected", pa.list_(msg)),
    ("score", pa.float64()), ("flag", pa.bool_()), ("tags", pa.list_(pa.string())),
    ("meta", pa.struct([("source", pa.string()), ("n", pa.int64())])),
])


def conv(v):
    """pyarrow's Python values as cherry's JSON: a map (list of pairs) is an object,
    a date its day number."""
    if isinstance(v, datetime.date):
        return (v - datetime.date(1970, 1, 1)).days
    if isinstance(v, list) and v and all(isinstance(x, tuple) for x in v):
        return {k: conv(x) for k, x in v}
    if isinstance(v, list):
        return [conv(x) for x in v]
    if isinstance(v, dict):
        return {k: conv(x) for k, x in v.items()}
    return v


def write(name, rows, schema, **kw):
    t = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(t, os.path.join(out, name + ".parquet"), **kw)
    with open(os.path.join(out, name + ".jsonl"), "w") as f:
        for r in pq.read_table(os.path.join(out, name + ".parquet")).to_pylist():
            f.write(json.dumps(conv(r), ensure_ascii=False, separators=(",", ":")) + "\n")


rows = chat_rows(40)
for codec in ["none", "snappy", "gzip", "brotli", "lz4", "zstd"]:
    write(f"chat-{codec}", rows, schema, compression=codec, row_group_size=15)
write("chat-v2", rows, schema, compression="zstd", data_page_version="2.0", row_group_size=15)
write("chat-v2-plain", rows, schema, compression="none", data_page_version="2.0", use_dictionary=False)
write("chat-nodict", rows, schema, compression="snappy", use_dictionary=False, row_group_size=7)
write("chat-smallpages", rows, schema, compression="snappy", data_page_size=64, write_batch_size=5,
      row_group_size=13)
write("chat-delta", rows, schema, compression="none", use_dictionary=False, column_encoding={
    "id": "DELTA_BINARY_PACKED", "prompt": "DELTA_BYTE_ARRAY", "chosen.list.element.role": "DELTA_LENGTH_BYTE_ARRAY",
    "chosen.list.element.content": "DELTA_BYTE_ARRAY", "score": "BYTE_STREAM_SPLIT", "meta.n": "DELTA_BINARY_PACKED"})

# scalar types, a map, a nested list of lists, required (non-null) fields, empty file
sch2 = pa.schema([
    pa.field("i32", pa.int32(), nullable=False), ("u8", pa.uint8()), ("u64", pa.uint64()), ("f32", pa.float32()),
    ("s", pa.large_string()), ("m", pa.map_(pa.string(), pa.int32())), ("ll", pa.list_(pa.list_(pa.int16()))),
    ("d", pa.date32()),
])
rows2 = [{"i32": -5 + i, "u8": i * 40 % 256, "u64": 2**62 + i, "f32": 1.5 * i,
          "s": "\u65e5\u672c" * i, "m": [("a", i), ("b", None)] if i % 2 else None,
          "ll": [[1, 2], [], None, [i]] if i % 3 else [], "d": 19000 + i} for i in range(9)]
write("types", rows2, sch2, compression="zstd")
write("empty", [], schema)

# the rank2pairs / sft / dpo test data: plain strings
prefs = [{"prompt": f"Q{i}: what is {i}+{i}?", "chosen": f" {2 * i}", "rejected": f" {2 * i + 1}"} for i in range(24)]
write("pref", prefs, pa.schema([("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())]),
      compression="snappy", row_group_size=10)

# the end-to-end test's inputs (tests/t_parquet.sh): an Argilla HF-datasets export, a
# conversational SFT set; pyarrow infers the schema from the committed JSONL
def from_jsonl(name, src):
    rows = [json.loads(l) for l in open(src) if l.strip()]
    while True:  # the longest prefix of rows with one schema (the test files mix shapes)
        try:
            t = pa.Table.from_pylist(rows)
            break
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            rows.pop()
    pq.write_table(t, os.path.join(out, name + ".parquet"), compression="zstd")
    with open(os.path.join(out, name + ".jsonl"), "w") as f:
        for r in t.to_pylist():
            f.write(json.dumps(conv(r), ensure_ascii=False, separators=(",", ":")) + "\n")


from_jsonl("argilla-hf", "tests/data/argilla/a1_hf.jsonl")
from_jsonl("conversational", "tests/data/kinds/conversational.jsonl")
