#!/usr/bin/env python3
"""make_gguf_q4k_fixture.py — llama.cpp's own Q4_K quantiser as the truth for cherry's
(common/formats/quant_k.c, export-gguf -t q4_k), for tests/test_gguf_export.c.

A random 2-layer Llama of width 256 (bin/init-model) is exported to F32 by
export-gguf and quantised by llama.cpp (llama_cpp.llama_model_quantize, ftype
MOSTLY_Q4_K_S, no importance matrix, so ggml-quants.c quantize_row_q4_K_ref).  48 rows
of 256 (one Q4_K super-block each) are kept: 16 from blk.0.attn_q, 16 from
blk.1.ffn_gate, 16 from blk.0.ffn_up, with their float32 inputs.  Writes
tests/oracle/fixtures/gguf-quant/q4k-input.safetensors ({"x": [48, 256]}) and
q4k.gguf (tensor "t_q4_k", [256, 48], llama.cpp's bytes).  Needs llama-cpp-python,
gguf, numpy, safetensors and the built programs:
    python3 tests/oracle/make_gguf_q4k_fixture.py
"""
import os
import subprocess
import tempfile

import llama_cpp
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFWriter
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "gguf-quant")
B = os.environ.get("BIN", "bin")
PICK = [("blk.0.attn_q.weight", 16), ("blk.1.ffn_gate.weight", 16), ("blk.0.ffn_up.weight", 16)]


def main():
    with tempfile.TemporaryDirectory() as T:
        m = os.path.join(T, "m")
        subprocess.run([f"{B}/init-model", "-q", "--family", "llama", "--layers", "2", "--heads", "4", "--kv-heads",
                        "2", "--width", "256", "--mlp-width", "512", "--context", "64", "--tokenizer",
                        "data/tokenizer.json", "--seed", "11", "-o", m], check=True)
        f32, q = os.path.join(T, "f32.gguf"), os.path.join(T, "q4k.gguf")
        subprocess.run([f"{B}/export-gguf", "-q", "-t", "f32", m, f32], check=True)
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype = 14  # LLAMA_FTYPE_MOSTLY_Q4_K_S
        p.nthread = 1
        assert llama_cpp.llama_model_quantize(f32.encode(), q.encode(), p) == 0
        a = {t.name: t for t in GGUFReader(f32).tensors}
        b = {t.name: t for t in GGUFReader(q).tensors}
        xs, qs = [], []
        for name, n in PICK:
            assert b[name].tensor_type == Q.Q4_K, (name, b[name].tensor_type)
            x = np.asarray(a[name].data, np.float32).reshape(-1, 256)
            y = np.asarray(b[name].data).view(np.uint8).reshape(-1, 144)
            assert x.shape[0] == y.shape[0]
            xs.append(x[:n])
            qs.append(y[:n])
    x, y = np.concatenate(xs), np.concatenate(qs)
    save_file({"x": np.ascontiguousarray(x)}, os.path.join(OUT, "q4k-input.safetensors"))
    os.chmod(os.path.join(OUT, "q4k-input.safetensors"), 0o644)
    gw = GGUFWriter(os.path.join(OUT, "q4k.gguf"), "llama")
    gw.add_tensor("t_q4_k", np.ascontiguousarray(y), raw_dtype=Q.Q4_K)
    gw.write_header_to_file()
    gw.write_kv_data_to_file()
    gw.write_tensors_to_file()
    gw.close()
    print(f"wrote {OUT}: {x.shape[0]} Q4_K blocks from llama-cpp-python {llama_cpp.__version__}")


if __name__ == "__main__":
    main()
