#!/usr/bin/env python3
"""make_gguf_quant_fixture.py — gguf-py's quantisers as the truth for cherry's
(common/formats/quant.c, used by export-gguf), for tests/test_gguf_export.c.

Writes tests/oracle/fixtures/gguf-quant/:
  input.safetensors  float32 rows: normal values at several scales, an all-zero
                     block, ties for the largest magnitude (Q4_0 takes the first),
                     values that round half-way (x.5 after scaling), binary16
                     subnormals and overflow (70000 -> Inf), tiny values that flush
                     to zero, and exact halves for round-to-nearest-even
  quant.gguf         the same rows as gguf-py's quantize() gives them in F16, BF16,
                     Q8_0 and Q4_0 (GGUFWriter, raw bytes), tensors t_f16 ... t_q4_0
cherry's quant_row must produce the same bytes.  Run once; outputs are committed:
    python3 tests/oracle/make_gguf_quant_fixture.py
"""
import os

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter
from gguf.quants import quantize
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "gguf-quant")


def rows():
    rng = np.random.default_rng(20261206)
    r = []
    for scale in [1.0, 0.02, 300.0, 1e-6]:
        r.append((rng.standard_normal(128) * scale).astype(np.float32))
    z = np.zeros(128, np.float32)
    z[40] = 3.0  # one non-zero block among zero blocks
    r.append(z)
    t = (rng.standard_normal(128) * 0.1).astype(np.float32)
    t[5], t[9] = 2.0, -2.0  # a tie in magnitude: Q4_0 takes the first (positive) one
    t[37], t[50] = -1.5, 1.5  # and the negative one first in the next block
    r.append(t)
    h = np.arange(128, dtype=np.float32) - 63.5  # halves: x.5 * 127/63.5 etc.
    h[:32] = np.array([i * 0.5 for i in range(-16, 16)], np.float32)
    r.append(h)
    e = np.array([70000.0, -70000.0, 65504.0, 65519.0, 65520.0, 6.0e-8, 2.98e-8, 2.9802322e-8, 1e-9, -3.0e-5,
                  5.96e-8, 1.0 + 2**-11, 1.0 + 3 * 2**-11, 1.0 + 2**-12, 0.0, -0.0] * 8, np.float32)
    e[16:32] = np.frombuffer(np.array([0x3f808000, 0x3f818000, 0x3f80ffff, 0x00000001, 0x80400000, 0x7f7fffff,
                                       0xff7fffff, 0x33000000, 0x33000001, 0x387fe000, 0x387ff000, 0x38800000,
                                       0x477fefff, 0x477ff000, 0x3effffff, 0x00800000], np.uint32).tobytes(),
                             np.float32)
    r.append(e)
    return np.stack(r)


def main():
    os.makedirs(OUT, exist_ok=True)
    x = rows()
    save_file({"x": x}, os.path.join(OUT, "input.safetensors"))
    os.chmod(os.path.join(OUT, "input.safetensors"), 0o644)
    gw = GGUFWriter(os.path.join(OUT, "quant.gguf"), "llama")
    for qt in [Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0]:
        with np.errstate(over="ignore"):
            q = quantize(x, qt)
        raw = np.ascontiguousarray(q).view(np.uint8).reshape(x.shape[0], -1)
        gw.add_tensor("t_" + qt.name.lower(), raw, raw_dtype=qt)
    gw.write_header_to_file()
    gw.write_kv_data_to_file()
    gw.write_tensors_to_file()
    gw.close()
    print(f"wrote {OUT}: {x.shape[0]} rows of {x.shape[1]}")


if __name__ == "__main__":
    main()
