/* fuzz_prefdata.c — preference exports (prefdata*.c): every container (JSONL, one
 * JSON array or document, CSV with JSON cells), every shape (Argilla 1.x, 1.x HF,
 * 2.x nested and flat, OASST, SHP, UltraFeedback, summarize, hh-rlhf, pairs, auto)
 * and every pairing x aggregation mode, as rank2pairs runs them.  The first byte
 * chooses shape and container, the second the modes; the rest is the file. */
#include "data/prefdata.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    PdShape shape = (PdShape)(data[0] % PD_SHAPE_COUNT);
    const char *name = (data[0] >> 4) & 1 ? "x.csv" : "x.jsonl";
    PdPairOptions po = {.mode = (PdPairMode)(data[1] % 4),
                        .aggregate = (PdAggregate)((data[1] >> 2) % 4),
                        .min_annotators = 1 + ((data[1] >> 4) & 1),
                        .min_agreement = (data[1] >> 5) & 1 ? 0.5 : 0};
    const char *p = fuzz_write(name, data + 2, size - 2);
    Error e;
    PdInput in;
    if (pd_input_open(&in, p, &e)) {
        pd_input_close(&in);
        return 0;
    }
    PdParser parser;
    pd_parser_init(&parser, shape, (data[0] >> 5) & 1 ? "ranking" : NULL, NULL);
    pd_parser_new_file(&parser);
    PdRecordList recs = {0};
    PdPairList pairs = {0};
    FILE *devnull = fopen("/dev/null", "w");
    for (int i = 0; i < 256; i++) {
        json_t *row = NULL;
        int r = pd_input_next(&in, &row, &e);
        if (r || !row) break;
        r = pd_parse_row(&parser, row, in.where, &recs, &e);
        json_decref(row);
        if (r) break;
        for (int k = 0; k < recs.n; k++) {
            double agree;
            if (pd_record_pairs(&recs.r[k], &po, &pairs, &agree) != PD_USED) continue;
            for (int j = 0; j < pairs.n; j++) pd_pair_write(devnull, &recs.r[k], &pairs.p[j], 1, &e);
        }
        pd_list_clear(&recs);
    }
    fclose(devnull);
    pd_list_clear(&recs);
    free(recs.r);
    free(pairs.p);
    pd_parser_free(&parser);
    pd_input_close(&in);
    return 0;
}
