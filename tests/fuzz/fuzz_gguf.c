/* fuzz_gguf.c — the GGUF parser (gguf_open: magic, version, key/value table,
 * strings and arrays, tensor infos, alignment, data offsets) on arbitrary files. */
#include "formats/gguf.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write("x.gguf", data, size);
    GgufFile g;
    Error e;
    if (gguf_open(&g, p, &e) == 0) gguf_close(&g);
    return 0;
}
