/* test_oracle_gguf_smollm2.c — cherry on the real SmolLM2-135M-Instruct imported by
 * import-gguf, against transformers and the `tokenizers` library on the same directory.
 *
 * Fixture tests/oracle/fixtures/gguf-smollm2.json (tests/oracle/check_gguf.py): the
 * chat text rendered by the model's own chat template, its ids, transformers' float32
 * per-token log-probs, and the ids `tokenizers` gives for a varied corpus.  Checks:
 * cherry's tokenizer gives the same ids for the chat text and the corpus, and cherry's
 * model the same log-probs within 1e-3.  Skips (77) when `make
 * models/smollm2-135m-instruct` has not been run; never downloads. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "formats/tokenizer.h"
#include "base/util.h"

#define MODEL "models/smollm2-135m-instruct"
#define FIXTURE "tests/oracle/fixtures/gguf-smollm2.json"

static int same_ids(const IntVec *got, const json_t *want) {
    if (got->n != (int)json_array_size(want)) return 0;
    for (int k = 0; k < got->n; k++)
        if (got->v[k] != json_integer_value(json_array_get(want, k))) return 0;
    return 1;
}

int main(void) {
    if (!file_exists(MODEL "/config.json")) {
        printf("skip: %s not present (run 'make models/smollm2-135m-instruct')\n", MODEL);
        return 77;
    }
    json_error_t je;
    json_t *fx = json_load_file(FIXTURE, 0, &je);
    if (!fx) {
        printf("%s: %s\n", FIXTURE, je.text);
        return 1;
    }
    int failures = 0;
    Error e = {0};

    Tokenizer *tok = NULL;
    if (model_tokenizer_load(&tok, MODEL, &e)) {
        printf("FAIL tokenizer: %s\n", e.msg);
        return 1;
    }
    size_t i;
    json_t *item;
    int n_ok = 0;
    json_array_foreach(json_object_get(fx, "corpus"), i, item) {
        const char *text = json_string_value(json_object_get(item, "text"));
        IntVec ids = {0};
        tok_encode(tok, text, strlen(text), 1, &ids);
        if (same_ids(&ids, json_object_get(item, "ids")))
            n_ok++;
        else {
            failures++;
            printf("FAIL corpus[%zu]: cherry gives %d ids, tokenizers %zu, for \"%s\"\n", i, ids.n,
                   json_array_size(json_object_get(item, "ids")), text);
        }
        intvec_free(&ids);
    }
    printf("tokenizer: %d/%zu corpus texts encode as tokenizers does\n", n_ok,
           json_array_size(json_object_get(fx, "corpus")));

    const char *chat = json_string_value(json_object_get(fx, "chat_text"));
    json_t *want_ids = json_object_get(fx, "ids"), *want_lp = json_object_get(fx, "logprobs");
    IntVec ids = {0};
    tok_encode(tok, chat, strlen(chat), 1, &ids);
    if (!same_ids(&ids, want_ids)) {
        failures++;
        printf("FAIL chat text: cherry gives %d ids, transformers %zu\n", ids.n, json_array_size(want_ids));
    }
    tok_free(tok);

    /* log-probs on the fixture's ids (so a tokenizer difference cannot hide here) */
    Model m;
    double t0 = now_seconds();
    if (model_load(&m, MODEL, &e)) {
        printf("FAIL model_load: %s\n", e.msg);
        return 1;
    }
    int T = (int)json_array_size(want_ids);
    int *toks = xmalloc(T * sizeof(int)), *tgt = xmalloc(T * sizeof(int));
    float *lp = xmalloc(T * sizeof(float));
    for (int k = 0; k < T; k++) toks[k] = (int)json_integer_value(json_array_get(want_ids, k));
    for (int k = 0; k < T; k++) tgt[k] = k + 1 < T ? toks[k + 1] : -1;
    model_forward(&m, toks, NULL, NULL, 1, T);
    model_logprobs(&m, tgt, lp, NULL);
    double worst = 0, sum_c = 0, sum_t = 0;
    int at = 0;
    for (int k = 0; k + 1 < T; k++) {
        double want = json_number_value(json_array_get(want_lp, k));
        double d = fabs(lp[k] - want);
        sum_c += lp[k];
        sum_t += want;
        if (d > worst) worst = d, at = k;
    }
    printf("log-probs of %d tokens: cherry mean %.5f, transformers mean %.5f, worst |diff| %.2e at token %d "
           "(%.1f s with loading)\n",
           T - 1, sum_c / (T - 1), sum_t / (T - 1), worst, at, now_seconds() - t0);
    if (!(worst < 1e-3)) {
        failures++;
        printf("FAIL log-probs: worst difference %.3g (tolerance 1e-3)\n", worst);
    }
    free(toks);
    free(tgt);
    free(lp);
    intvec_free(&ids);
    model_free(&m);
    json_decref(fx);
    if (failures) {
        printf("%d checks failed\n", failures);
        return 1;
    }
    printf("SmolLM2-135M-Instruct: cherry agrees with transformers and tokenizers\n");
    return 0;
}
