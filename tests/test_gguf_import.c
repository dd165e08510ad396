/* test_gguf_import.c — import-gguf against llama.cpp's own writer and transformers.
 *
 * Fixture (tests/oracle/make_gguf_fixture.py): tiny.gguf written by gguf-py's
 * GGUFWriter with tensors quantised by gguf-py (F32/F16/BF16/Q8_0/Q4_0/Q4_1) and Q/K
 * permuted as convert_hf_to_gguf.py does; expected.safetensors, the HF-layout tensors
 * gguf-py dequantises to; expected.json, the ids the original tokenizer gives for a
 * corpus and transformers' per-token log-probs for the expected weights.
 * Checks: every imported tensor equal bit for bit, config.json values, cherry's
 * tokenizer on the rebuilt tokenizer.json, cherry's model on the imported directory
 * (log-probs within 1e-4), the un-permutation on a hand example, and that a failed
 * import leaves no output behind. */
#define _GNU_SOURCE
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "formats/safetensors.h"
#include "formats/tokenizer.h"
#include "base/util.h"

#define FIX "tests/oracle/fixtures/gguf-tiny"

static void test_unpermute(void) {
    /* 2 heads of 4 rows, 1 column; GGUF order per head is (i, j) pairs of
     * HF rows (j*2 + i): GGUF [0,2,1,3] <- HF [0,1,2,3] */
    float gg[8] = {0, 2, 1, 3, 4, 6, 5, 7}, hf[8];
    Error e = {0};
    CHECK(gguf_unpermute_rows(gg, hf, 8, 1, 2, &e) == 0, "unpermute: %s", e.msg);
    for (int i = 0; i < 8; i++) CHECK(hf[i] == (float)i, "unpermute row %d: expected %d, got %g", i, i, hf[i]);
    /* rows carry their columns along */
    float g2[8] = {10, 11, 30, 31, 20, 21, 40, 41}, h2[8];
    CHECK(gguf_unpermute_rows(g2, h2, 4, 2, 1, &e) == 0, "unpermute 4x2");
    const float want[8] = {10, 11, 20, 21, 30, 31, 40, 41};
    CHECK(memcmp(h2, want, sizeof want) == 0, "unpermute 4x2: rows not moved whole");
    CHECK(gguf_unpermute_rows(gg, hf, 6, 1, 4, &e) == EX_DATAERR, "6 rows in 4 heads must be refused");
    CHECK(gguf_unpermute_rows(gg, hf, 6, 1, 2, &e) == EX_DATAERR, "odd head size 3 must be refused");
}

static void check_config(const char *dir, const json_t *meta) {
    char *p = path_join(dir, "config.json");
    json_error_t je;
    json_t *c = json_load_file(p, 0, &je);
    CHECK(c != NULL, "%s: %s", p, je.text);
    free(p);
    if (!c) return;
    const struct {
        const char *cfg, *meta;
    } ints[] = {{"num_hidden_layers", "n_layer"},
                {"hidden_size", "hidden_size"},
                {"num_attention_heads", "num_attention_heads"},
                {"num_key_value_heads", "num_key_value_heads"},
                {"intermediate_size", "intermediate_size"},
                {"max_position_embeddings", "max_position_embeddings"},
                {"vocab_size", "vocab_size"}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        json_int_t got = json_integer_value(json_object_get(c, ints[i].cfg));
        json_int_t want = json_integer_value(json_object_get(meta, ints[i].meta));
        CHECK(got == want && want > 0, "config %s: expected %lld, got %lld", ints[i].cfg, (long long)want,
              (long long)got);
    }
    CHECK(json_is_false(json_object_get(c, "tie_word_embeddings")), "tie_word_embeddings: expected false");
    CHECK(json_number_value(json_object_get(c, "rms_norm_eps")) == 1e-6, "rms_norm_eps: expected 1e-6, got %.17g",
          json_number_value(json_object_get(c, "rms_norm_eps")));
    CHECK(json_number_value(json_object_get(c, "rope_theta")) == 10000.0, "rope_theta: expected 10000");
    CHECK(json_integer_value(json_object_get(c, "bos_token_id")) == 1 &&
              json_integer_value(json_object_get(c, "eos_token_id")) == 2,
          "bos/eos ids: expected 1/2");
    json_decref(c);

    p = path_join(dir, "tokenizer_config.json");
    c = json_load_file(p, 0, &je);
    CHECK(c != NULL, "%s: %s", p, je.text);
    free(p);
    if (!c) return;
    const char *bos = json_string_value(json_object_get(c, "bos_token"));
    const char *eos = json_string_value(json_object_get(c, "eos_token"));
    const char *tmpl = json_string_value(json_object_get(c, "chat_template"));
    CHECK(bos && !strcmp(bos, json_string_value(json_object_get(meta, "bos_token"))), "bos_token: got %s",
          bos ? bos : "(none)");
    CHECK(eos && !strcmp(eos, json_string_value(json_object_get(meta, "eos_token"))), "eos_token: got %s",
          eos ? eos : "(none)");
    CHECK(tmpl && strstr(tmpl, "<|im_start|>{{ m['role'] }}"), "chat_template missing or wrong");
    json_decref(c);
}

static void check_tensors(const char *dir, const json_t *meta) {
    char *p = path_join(dir, "model.safetensors");
    StFile got, want;
    Error e = {0};
    int rc = st_open(&got, p, &e);
    CHECK(rc == 0, "open %s: %s", p, e.msg);
    free(p);
    if (rc) return;
    rc = st_open(&want, FIX "/expected.safetensors", &e);
    CHECK(rc == 0, "open expected: %s", e.msg);
    if (rc) {
        st_close(&got);
        return;
    }
    CHECK(got.n == want.n, "tensor count: expected %d, got %d", want.n, got.n);
    size_t n_params = 0;
    for (int i = 0; i < want.n; i++) {
        const StTensor *w = &want.tensors[i], *g = st_find(&got, w->name);
        CHECK(g != NULL, "tensor %s missing from the import", w->name);
        if (!g) continue;
        n_params += g->numel;
        int same_shape = g->ndim == w->ndim && g->dtype == ST_F32;
        for (int d = 0; same_shape && d < w->ndim; d++) same_shape = g->shape[d] == w->shape[d];
        CHECK(same_shape, "tensor %s: shape or dtype differs from the HF layout", w->name);
        if (!same_shape) continue;
        size_t bad = 0, first = 0;
        for (size_t k = 0; k < w->numel; k++)
            if (memcmp((const float *)g->data + k, (const float *)w->data + k, 4) != 0 && !bad++) first = k;
        CHECK(
            bad == 0,
            "tensor %s: %zu of %zu values differ from gguf-py's dequantisation (first at %zu: expected %.9g, got %.9g)",
            w->name, bad, w->numel, first, ((const float *)w->data)[first], ((const float *)g->data)[first]);
    }
    CHECK((json_int_t)n_params == json_integer_value(json_object_get(meta, "n_params")),
          "parameters: expected %lld, got %zu", (long long)json_integer_value(json_object_get(meta, "n_params")),
          n_params);
    st_close(&got);
    st_close(&want);
}

static void check_tokenizer(const char *dir, const json_t *meta) {
    Tokenizer *t = NULL;
    Error e = {0};
    int rc = model_tokenizer_load(&t, dir, &e);
    CHECK(rc == 0, "cherry cannot load the rebuilt tokenizer: %s", e.msg);
    if (rc) return;
    CHECK(tok_vocab_size(t) == json_integer_value(json_object_get(meta, "vocab_size")), "tokenizer vocab size %d",
          tok_vocab_size(t));
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(meta, "corpus"), i, item) {
        const char *text = json_string_value(json_object_get(item, "text"));
        json_t *ids = json_object_get(item, "ids");
        IntVec out = {0};
        tok_encode(t, text, strlen(text), 1, &out);
        int same = out.n == (int)json_array_size(ids);
        for (int k = 0; same && k < out.n; k++) same = out.v[k] == json_integer_value(json_array_get(ids, k));
        CHECK(same, "corpus[%zu] \"%s\": %d ids from cherry, %zu from the original tokenizer", i, text, out.n,
              json_array_size(ids));
        intvec_free(&out);
    }
    tok_free(t);
}

static void check_logprobs(const char *dir, const json_t *meta) {
    Model m;
    Error e = {0};
    int rc = model_load(&m, dir, &e);
    CHECK(rc == 0, "cherry cannot load the imported model: %s", e.msg);
    if (rc) return;
    json_t *ids = json_object_get(meta, "logprob_ids"), *lps = json_object_get(meta, "logprobs");
    int T = (int)json_array_size(ids);
    int *tok = xmalloc(T * sizeof(int)), *tgt = xmalloc(T * sizeof(int));
    float *lp = xmalloc(T * sizeof(float));
    for (int k = 0; k < T; k++) tok[k] = (int)json_integer_value(json_array_get(ids, k));
    for (int k = 0; k < T; k++) tgt[k] = k + 1 < T ? tok[k + 1] : -1;
    model_forward(&m, tok, NULL, NULL, 1, T);
    model_logprobs(&m, tgt, lp, NULL);
    double worst = 0;
    for (int k = 0; k + 1 < T; k++) {
        double d = fabs(lp[k] - json_number_value(json_array_get(lps, k)));
        if (d > worst) worst = d;
    }
    printf("log-probs of %d tokens vs transformers: worst |diff| %.3g\n", T - 1, worst);
    CHECK(worst < 1e-4, "log-probs: worst difference %.3g from transformers (tolerance 1e-4)", worst);
    free(tok);
    free(tgt);
    free(lp);
    model_free(&m);
}

int main(void) {
    if (!file_exists(FIX "/tiny.gguf")) {
        printf("fixture %s/tiny.gguf not found (run from the source root)\n", FIX);
        return 1;
    }
    json_error_t je;
    json_t *meta = json_load_file(FIX "/expected.json", 0, &je);
    if (!meta) {
        printf("%s/expected.json: %s\n", FIX, je.text);
        return 1;
    }
    test_unpermute();

    char tmp[] = "/tmp/test_gguf_import.XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    char *out = path_join(tmp, "model");
    GgufImportOptions opt = {.quiet = 1};
    GgufImportStats st;
    Error e = {0};
    int rc = gguf_import_llama(FIX "/tiny.gguf", out, &opt, &st, &e);
    CHECK(rc == 0, "import: %s", e.msg);
    if (rc == 0) {
        CHECK(st.n_layers == 2 && st.tied == 0 && st.vocab_size == 330 && st.n_tensors == 21,
              "stats: layers %d tied %d vocab %d tensors %d", st.n_layers, st.tied, st.vocab_size, st.n_tensors);
        check_config(out, meta);
        check_tensors(out, meta);
        check_tokenizer(out, meta);
        check_logprobs(out, meta);
    }

    /* a failing import (truncated file) leaves neither output nor temporaries */
    char *bad = path_join(tmp, "bad.gguf"), *out2 = path_join(tmp, "model2");
    char *buf;
    size_t len;
    if (read_file(FIX "/tiny.gguf", &buf, &len, &e) == 0) {
        FILE *f = fopen(bad, "wb");
        fwrite(buf, 1, len - 100, f);
        fclose(f);
        free(buf);
        rc = gguf_import_llama(bad, out2, &opt, &st, &e);
        CHECK(rc == EX_DATAERR, "truncated import: expected %d, got %d (%s)", EX_DATAERR, rc, e.msg);
        CHECK(!file_exists(out2), "truncated import left %s behind", out2);
    }
    /* importing over an existing directory replaces it */
    rc = gguf_import_llama(FIX "/tiny.gguf", out, &opt, &st, &e);
    CHECK(rc == 0, "re-import over an existing directory: %s", e.msg);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp- >/dev/null", tmp);
    CHECK(system(cmd) != 0, "temporaries left in %s", tmp);

    remove_tree(tmp);
    free(out);
    free(out2);
    free(bad);
    json_decref(meta);
    if (failures) {
        printf("%d checks failed\n", failures);
        return 1;
    }
    printf("GGUF import matches gguf-py, the original tokenizer and transformers\n");
    return 0;
}
