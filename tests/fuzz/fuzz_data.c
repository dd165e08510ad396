/* fuzz_data.c — JSONL records of every kind through the data layer (jsonl.c,
 * data.c): text, prompt-completion, conversational, segments, prompt-only,
 * preference, rollout and auto-detection, with each chat template, truncation
 * mode and length limit.  The first byte chooses the options; the rest is the file. */
#include "data/data.h"
#include "fuzz.h"

static Tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Error e;
    if (!tok && tok_load(&tok, "tests/oracle/tokenizers/smol.json", &e)) {
        fprintf(stderr, "fuzz_data: %s (run from the repository root)\n", e.msg);
        abort();
    }
    if (size < 2) return 0;
    DataOptions o;
    data_options_default(&o);
    o.kind = (DataKind)(data[0] % 8);
    o.tpl = (ChatTemplate)(1 + (data[0] >> 3) % 4);
    o.truncation = (data[0] >> 5) & 1 ? TRUNC_KEEP_START : TRUNC_KEEP_END;
    o.max_length = (data[1] & 3) == 0 ? 0 : 4 << (data[1] & 3);
    o.max_prompt_length = (data[1] >> 2) & 1 ? 8 : 0;
    o.skip_invalid = (data[1] >> 3) & 1;
    o.parse_special = (data[1] >> 4) & 1;
    o.add_eos = (data[1] >> 5) & 1;
    const char *p = fuzz_write("data.jsonl", data + 2, size - 2);
    DataReader *r;
    if (data_open(&r, p, tok, &o, &e)) return 0;
    DataKind kind;
    int rc = data_peek_kind(r, &kind, &e);
    for (int i = 0; rc == 0 && i < 64; i++) {
        if (kind == DATA_PREFERENCE && (data[0] >> 6) & 1) {
            PrefExample x;
            rc = data_next_pref(r, &x, &e);
            if (rc == 0) pref_example_free(&x);
        } else if (kind == DATA_PROMPT_ONLY || (data[0] >> 7) & 1) {
            PromptExample x;
            rc = data_next_prompt(r, &x, &e);
            if (rc == 0) prompt_example_free(&x);
        } else {
            Example x;
            rc = data_next(r, &x, &e);
            if (rc == 0) example_free(&x);
        }
    }
    data_close(r);
    return 0;
}
