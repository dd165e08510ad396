#!/bin/sh
# t_import_kquant_llamacpp.sh — import-gguf reads K-quant files made by llama.cpp's own
# quantiser bit-identically to gguf-py: tests/oracle/check_gguf_kquant_model.py --quick
# (a random width-256 Llama exported to F16, quantised by llama_model_quantize to Q2_K,
# Q3_K_M, Q4_K_M, Q5_K_M and Q6_K, imported, every tensor compared).  Runs Python because
# the files must come from llama.cpp itself; skipped (exit 77) when python3 cannot
# import llama_cpp.  The hand-built blocks of every K-quant type are checked without
# Python by tests/test_gguf_kquants.c.
PY=${PYTHON:-python3}
if ! "$PY" -c 'import llama_cpp, gguf, regex, safetensors' >/dev/null 2>&1; then
  echo "skip: python3 cannot import llama_cpp, gguf, regex and safetensors (pip install llama-cpp-python gguf regex safetensors to run this check)"
  exit 77
fi
out=$(BIN="${BIN:-bin}" timeout 300 "$PY" tests/oracle/check_gguf_kquant_model.py --quick 2>&1)
rc=$?
echo "$out" | grep -E "^(width|tensors|all|FAIL)" | tail -n 12
[ $rc -eq 0 ] || { echo "FAIL: check_gguf_kquant_model.py --quick exited $rc"; exit 1; }
echo "import-gguf: llama.cpp K-quant files bit-identical"
