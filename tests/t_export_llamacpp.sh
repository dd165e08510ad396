#!/bin/sh
# t_export_llamacpp.sh — an export-gguf file runs in llama.cpp and generates the same
# greedy tokens as cherry: tests/oracle/check_export_llamacpp.py --quick (a tiny Llama
# and a tiny GPT-2 trained here, F32 and Q8_0 exports, llama.cpp through
# llama-cpp-python; F32 must match token for token).  This is the one shell test that
# runs Python, because the oracle is llama.cpp itself: it is skipped (exit 77) when
# python3 cannot import llama_cpp (pip install llama-cpp-python builds it).  The full
# run, with SmolLM2-135M-Instruct in four types, is recorded in
# tests/oracle/fixtures/gguf-export-llamacpp.json.
PY=${PYTHON:-python3}
if ! "$PY" -c 'import llama_cpp' >/dev/null 2>&1; then
  echo "skip: python3 cannot import llama_cpp (pip install llama-cpp-python to run this check)"
  exit 77
fi
out=$(BIN="${BIN:-bin}" timeout 300 "$PY" tests/oracle/check_export_llamacpp.py --quick 2>&1)
rc=$?
echo "$out" | grep -v "^llama_\|^ggml_\|^load" | tail -n 8
[ $rc -eq 0 ] || { echo "FAIL: check_export_llamacpp.py --quick exited $rc"; exit 1; }
echo "export-gguf in llama.cpp: greedy tokens identical"
