/* fuzz_tokenizer_json.c — tokenizer.json loading (vocabulary, merges, added tokens,
 * normalizer, pre-tokenizer regexes, post-processor, decoder) on arbitrary files; a
 * file that loads then encodes a fixed text and the input's own bytes and decodes
 * the ids back, with and without special tokens. */
#include "formats/tokenizer.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write("tokenizer.json", data, size);
    Tokenizer *t = NULL;
    Error e;
    if (tok_load(&t, p, &e) != 0) return 0;
    static const char fixed[] = "Hello, world! 123 <|endoftext|> \xc3\xa9t\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \n\n  x";
    for (int ps = 0; ps < 2; ps++) {
        IntVec ids = {0};
        tok_encode(t, fixed, sizeof fixed - 1, ps, &ids);
        tok_encode(t, (const char *)data, size < 512 ? size : 512, ps, &ids);
        char *text = NULL;
        size_t len;
        if (tok_decode(t, ids.v, ids.n, ps, &text, &len, &e) == 0) free(text);
        intvec_free(&ids);
    }
    tok_free(t);
    return 0;
}
