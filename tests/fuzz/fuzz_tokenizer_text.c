/* fuzz_tokenizer_text.c — encoding arbitrary bytes (invalid UTF-8, NUL, special-token
 * strings, long runs) with the real tokenizers of the oracle tests (GPT-2, Llama-3,
 * SmolLM2), decoding the ids back, and decoding the input read as a list of ids
 * (out-of-range ids included). */
#include "formats/tokenizer.h"
#include "fuzz.h"

static Tokenizer *toks[3];

static void load_all(void) {
    static const char *const files[3] = {"tests/oracle/tokenizers/gpt2.json", "tests/oracle/tokenizers/llama3.json",
                                         "tests/oracle/tokenizers/smol.json"};
    for (int i = 0; i < 3; i++) {
        Error e;
        if (tok_load(&toks[i], files[i], &e)) {
            fprintf(stderr, "fuzz_tokenizer_text: %s (run from the repository root)\n", e.msg);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!toks[0]) load_all();
    if (size < 1) return 0;
    Tokenizer *t = toks[data[0] % 3];
    int ps = (data[0] >> 2) & 1, skip = (data[0] >> 3) & 1;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    IntVec ids = {0};
    tok_encode(t, text, n, ps, &ids);
    char *out = NULL;
    size_t len;
    Error e;
    if (tok_decode(t, ids.v, ids.n, skip, &out, &len, &e) == 0) free(out);
    intvec_free(&ids);
    /* the same bytes as ids: 32-bit little-endian, any value */
    int nid = (int)(n / 4);
    int *raw = malloc((size_t)(nid ? nid : 1) * sizeof(int));
    for (int i = 0; i < nid; i++) memcpy(&raw[i], text + 4 * i, 4);
    out = NULL;
    if (tok_decode(t, raw, nid, skip, &out, &len, &e) == 0) free(out);
    free(raw);
    return 0;
}
