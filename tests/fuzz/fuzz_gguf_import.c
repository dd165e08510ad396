/* fuzz_gguf_import.c — the GGUF -> Hugging Face import (gguf_import_llama:
 * hyper-parameters, vocabulary and merges, tensor plan, dequantisation, config and
 * tokenizer writing) on arbitrary files. */
#include "formats/gguf.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write("x.gguf", data, size);
    char out[800];
    snprintf(out, sizeof out, "%s/out", fuzz_dir());
    GgufImportOptions opt = {0};
    opt.quiet = 1;
    GgufImportStats st;
    Error e;
    gguf_import_llama(p, out, &opt, &st, &e);
    remove_tree(out);
    return 0;
}
