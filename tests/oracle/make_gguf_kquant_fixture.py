#!/usr/bin/env python3
"""make_gguf_kquant_fixture.py — GGUF tensors in ggml's K-quant and 5-bit block formats,
and gguf-py's dequantisation of each, for tests/test_gguf_kquants.c.

gguf-py (0.19) can dequantise Q2_K..Q6_K, Q5_0 and Q5_1 but not quantise the K-quants,
so the blocks are built by hand: random bytes for every quant and scale field, and
the fp16 super-block scales (d, dmin) drawn from a normal distribution, with a few
blocks pinned to edge cases (d = 0, negative, subnormal, the largest finite half).
gguf-py's dequantize() of each tensor is the expected result, which cherry must
reproduce bit for bit.  Q8_K has no gguf-py dequantiser; its expected values are
ggml-quants.c dequantize_row_q8_K (x = d * q, float32) computed here with numpy.

Outputs (tests/oracle/fixtures/gguf-kquants/, committed; make check never runs Python):
  kquants.gguf          GGUF v3 from gguf-py's GGUFWriter, one tensor per type
  expected.safetensors  the float32 dequantisation of each, same names

    python3 tests/oracle/make_gguf_kquant_fixture.py
"""
import os

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "gguf-kquants")

# byte offsets of the fp16 scale fields in each block (ggml-common.h)
HALF_FIELDS = {
    Q.Q2_K: [80, 82],
    Q.Q3_K: [108],
    Q.Q4_K: [0, 2],
    Q.Q5_K: [0, 2],
    Q.Q6_K: [208],
    Q.Q5_0: [0],
    Q.Q5_1: [0, 2],
}
EDGE_HALVES = [0.0, -0.75, 6.0e-8, 65504.0, -3.0e-5]  # zero, negative, subnormal, max, small


def blocks(rng, qt, n_blocks):
    _, size = GGML_QUANT_SIZES[qt]
    b = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    if qt == Q.Q8_K:
        d = (rng.standard_normal(n_blocks) * 0.01).astype(np.float32)
        d[0] = 0.0
        d[1] = -1.5e-40  # subnormal float32
        b[:, 0:4] = d.view(np.uint8).reshape(n_blocks, 4)
        return b
    for off in HALF_FIELDS[qt]:
        h = (rng.standard_normal(n_blocks) * 0.02).astype(np.float16)
        for i, v in enumerate(EDGE_HALVES):
            if i < n_blocks:
                h[(i + off) % n_blocks] = v
        b[:, off : off + 2] = h.view(np.uint8).reshape(n_blocks, 2)
    return b


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261206)
    gw = GGUFWriter(os.path.join(OUT, "kquants.gguf"), "llama")
    gw.add_name("cherry K-quant fixture")
    expected = {}
    rows = 3
    for qt in [Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_K, Q.Q5_0, Q.Q5_1]:
        blck, size = GGML_QUANT_SIZES[qt]
        per_row = 2 if blck == 256 else 4
        raw = blocks(rng, qt, rows * per_row).reshape(rows, per_row * size)
        name = "t_" + qt.name.lower()
        gw.add_tensor(name, raw, raw_dtype=qt)
        if qt == Q.Q8_K:
            d = raw.reshape(-1, size)[:, 0:4].copy().view(np.float32)
            q = raw.reshape(-1, size)[:, 4 : 4 + 256].view(np.int8).astype(np.float32)
            x = (d * q).astype(np.float32)
        else:
            x = dequantize(raw, qt).astype(np.float32)
        expected[name] = np.ascontiguousarray(x.reshape(rows, per_row * blck))
    gw.write_header_to_file()
    gw.write_kv_data_to_file()
    gw.write_tensors_to_file()
    gw.close()
    save_file(expected, os.path.join(OUT, "expected.safetensors"))
    os.chmod(os.path.join(OUT, "expected.safetensors"), 0o644)
    print(f"wrote {OUT}: {len(expected)} tensors")


if __name__ == "__main__":
    main()
