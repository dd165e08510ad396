/* fuzz_csv.c — the CSV reader (csvread.c over libcsv: quoting, embedded newlines,
 * line numbers, row growth) and JSON cells (pd_csv_cell) on arbitrary bytes. */
#include "base/csvread.h"
#include "data/prefdata.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *fp = fmemopen((void *)data, size, "rb");
    if (!fp) return 0;
    CsvReader r;
    Error e;
    if (csv_reader_open(&r, fp, "<fuzz>", &e) == 0) {
        const CsvRow *row;
        for (int i = 0; i < 4096 && csv_reader_next(&r, &row, &e) == 0 && row; i++)
            for (size_t c = 0; c < row->n; c++) {
                json_t *v = NULL;
                if (pd_csv_cell(row->cell[c], row->len[c], &v, "<fuzz>", "col", &e) == 0) json_decref(v);
            }
        csv_reader_close(&r);
    }
    fclose(fp);
    return 0;
}
