/* fuzz_parquet.c — the Parquet reader (common/base/parquet*.c: thrift footer and page
 * headers, codecs, levels, encodings, record assembly) on arbitrary bytes. */
#include <stdlib.h>
#include <string.h>

#include "base/parquet.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    void *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    ParquetFile *p;
    Error e;
    if (parquet_open_mem(&p, buf, size, 1, "<fuzz>", &e) == 0) {
        json_t *row;
        for (int i = 0; i < 4096 && parquet_next(p, &row, &e) == 0 && row; i++) json_decref(row);
        parquet_close(p);
    }
    return 0;
}
