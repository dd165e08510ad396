#!/usr/bin/env python3
"""make_tbevents_fixture.py — TensorBoard's own writer as the oracle of common/base/tbevents.c.

Writes tests/oracle/fixtures/tb-events.tfevents with the `tensorboard` package's
EventFileWriter-free pieces (tensorboard.summary.writer.record_writer.RecordWriter for
the TFRecord framing and masked CRC-32C, tensorboard.compat.proto Event/Summary for
the protobuf): the file_version record and three scalar Events, and
tests/oracle/fixtures/tb-events.json describing them.  tests/test_tbevents.c writes
the same Events with tb_write_scalars and requires the same bytes.

Also, as a check of a real run: `check_tbevents.py DIR LOG.jsonl` (below, --check)
reads an event directory with TensorBoard's EventAccumulator (what `tensorboard
--logdir` uses) and compares every scalar with the JSONL log of the same run.

Run from the repository root (needs the tensorboard package; make check never runs it):
    python3 tests/oracle/make_tbevents_fixture.py
    python3 tests/oracle/make_tbevents_fixture.py --check RUN-logs RUN.log.jsonl
"""
import io
import json
import math
import os
import sys

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "oracle", "fixtures")

# (wall_time, step, [(tag, value)]): step 0 and a negative step, a value of 0, a
# long tag (a two-byte length varint), a large step (a multi-byte varint)
EVENTS = [
    (1700000000.25, 0, [("train/loss", 2.5), ("train/learning_rate", 5e-4)]),
    (1700000001.5, 7, [("train/rewards/margins", 0.0), ("eval/loss", -1.25)]),
    (1700000002.0, 123456789, [("train/" + "x" * 150, 3.14159), ("train/num_tokens", 1e9)]),
]


def make():
    buf = io.BytesIO()
    w = RecordWriter(buf)
    ev = event_pb2.Event(wall_time=1699999999.0, file_version="brain.Event:2")
    w.write(ev.SerializeToString())
    for wall, step, vals in EVENTS:
        s = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in vals])
        w.write(event_pb2.Event(wall_time=wall, step=step, summary=s).SerializeToString())
    os.makedirs(FIX, exist_ok=True)
    with open(os.path.join(FIX, "tb-events.tfevents"), "wb") as f:
        f.write(buf.getvalue())
    import tensorboard
    with open(os.path.join(FIX, "tb-events.json"), "w") as f:
        json.dump({"generator": "tensorboard %s" % tensorboard.__version__, "file_version_wall_time": 1699999999.0,
                   "events": [{"wall_time": a, "step": b, "tags": [t for t, _ in c], "values": [v for _, v in c]}
                              for a, b, c in EVENTS]}, f, indent=1)
        f.write("\n")
    print("wrote tb-events.tfevents (%d bytes)" % len(buf.getvalue()))


def check(logdir, log_jsonl):
    """Every scalar of the JSONL log is in the event files under the transformers tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(logdir, size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    seen = {t: {e.step: e.value for e in acc.Scalars(t)} for t in tags}
    n = 0
    with open(log_jsonl) as f:
        for line in f:
            rec = json.loads(line)
            step = rec["step"]
            is_eval = any(k.startswith("eval_") for k in rec)
            for k, v in rec.items():
                # an evaluation record's epoch is the training records' (not repeated as eval/epoch)
                if k == "step" or v is None or (is_eval and k == "epoch"):
                    continue
                tag = "eval/" + k[5:] if k.startswith("eval_") else "train/" + k
                assert tag in seen and step in seen[tag], "%s at step %d missing (have %s)" % (tag, step, sorted(tags))
                got = seen[tag][step]
                assert math.isclose(got, v, rel_tol=1e-6, abs_tol=1e-12), (tag, step, got, v)
                n += 1
    print("%s: %d scalars of %s found by EventAccumulator, %d tags" % (logdir, n, log_jsonl, len(tags)))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3])
    else:
        make()
