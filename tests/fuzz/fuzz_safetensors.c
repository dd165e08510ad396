/* fuzz_safetensors.c — the safetensors reader (st_open: header length, JSON header,
 * dtypes, shapes, offsets against the file size) on arbitrary files. */
#include "formats/safetensors.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write("x.safetensors", data, size);
    StFile f;
    Error e;
    if (st_open(&f, p, &e) == 0) st_close(&f);
    return 0;
}
