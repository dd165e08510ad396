#!/usr/bin/env python3
"""check_gguf_kquant_model.py — import-gguf on real K-quant files made by llama.cpp.

SmolLM2-135M-Instruct and a random 2-layer Llama of width 256 (so that every matrix,
not only SmolLM2's 1536-wide ffn_down, takes the K-quant: SmolLM2's width 576 is not a
multiple of 256 and llama.cpp falls back to Q8_0/Q5_x there) are exported to F16 with
cherry's export-gguf, quantised by
llama.cpp's own quantiser (llama_cpp.llama_model_quantize, i.e. llama-quantize) to
Q2_K, Q3_K_M, Q4_K_M, Q5_K_M and Q6_K, and each file is imported with import-gguf;
every tensor of the import must equal gguf-py's dequantisation of the file bit for
bit (check_gguf.check_tensors: q/k re-permuted with convert_hf_to_gguf.py's
permute).  Needs llama-cpp-python, gguf, numpy and the built programs:

    make models/smollm2-135m-instruct
    python3 tests/oracle/check_gguf_kquant_model.py [--quick]
Results are recorded in tests/oracle/README-gguf.md.
"""
import collections
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_gguf  # noqa: E402

B = os.environ.get("BIN", "bin")
MODEL = "models/smollm2-135m-instruct"
FTYPES = {"Q2_K": 10, "Q3_K_M": 12, "Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18}  # llama.h llama_ftype


def main():
    try:
        import llama_cpp
    except ImportError as ex:
        print(f"skip: llama_cpp is not importable ({ex}); pip install llama-cpp-python")
        return 77
    from gguf import GGUFReader

    ok = True
    with tempfile.TemporaryDirectory() as T:
        w256 = os.path.join(T, "w256")
        subprocess.run([f"{B}/init-model", "-q", "--family", "llama", "--layers", "2", "--heads", "4", "--kv-heads", "2",
                        "--width", "256", "--mlp-width", "512", "--context", "64", "--tokenizer", "data/tokenizer.json",
                        "--seed", "3", "-o", w256], check=True)
        quick = "--quick" in sys.argv[1:]  # tests/t_import_kquant_llamacpp.sh: the width-256 model only
        models = [("width-256", w256)] + ([("smollm2", MODEL)] if os.path.exists(MODEL) and not quick else [])
        for (mname, mdir), (name, ftype) in [(m, f) for m in models for f in FTYPES.items()]:
            f16 = os.path.join(T, f"{mname}-f16.gguf")
            if not os.path.exists(f16):
                subprocess.run([f"{B}/export-gguf", "-q", "-t", "f16", mdir, f16], check=True)
            q = os.path.join(T, f"{mname}-{name}.gguf")
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = ftype
            params.nthread = 2
            rc = llama_cpp.llama_model_quantize(f16.encode(), q.encode(), params)
            assert rc == 0, f"llama_model_quantize {name}: {rc}"
            out = os.path.join(T, f"{mname}-{name}")
            subprocess.run([f"{B}/import-gguf", "-q", q, out], check=True)
            reader = GGUFReader(q)
            types = collections.Counter(t.tensor_type.name for t in reader.tensors)
            print(f"{mname} {name}: {dict(types)}")
            ok &= check_gguf.check_tensors(reader, out)
    print("all K-quant imports bit-identical to gguf-py" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
