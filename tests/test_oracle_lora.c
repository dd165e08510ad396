/* test_oracle_lora.c — LoRA adapters against PEFT (fixtures from
 * tests/oracle/make_lora_fixtures.py, peft 0.21.2, transformers 5.23.0, torch 2.15.0).
 *
 * For each fixture adapter directory (three written by cherry's dpo/rm-train and
 * loaded by PEFT; one written by PEFT and loaded here): model_load of the adapter
 * directory (its base found through the relative base_model_name_or_path), the
 * fixture's tokens (B=2, T=8), and a comparison with PEFT's float64 outputs:
 * per-token log-probs (or score-head values) with the adapter on, with it off
 * (PEFT disable_adapter == lora_set_enabled(m, 0)), and after lora_merge (PEFT
 * merge_and_unload computes the same function).  Tolerance: relative 1e-4 with a floor
 * of 5e-2 * max|reference| (float32 against float64), as test_oracle_model.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/lora.h"
#include "model/model.h"
#include "formats/safetensors.h"
#include "base/util.h"

#define RTOL 1e-4
#define FLOOR_FRAC 5e-2

static int failures;
static const char *fixdir = "tests/oracle/fixtures";

static void compare(const char *name, const char *what, const float *got, const float *want, int n) {
    double maxabs = 0, worst = 0;
    int wi = 0;
    for (int i = 0; i < n; i++) maxabs = fmax(maxabs, fabs(want[i]));
    double floor = fmax(FLOOR_FRAC * maxabs, 1e-7);
    for (int i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]) / fmax(fabs(want[i]), floor);
        if (!(err <= worst)) worst = isnan(err) ? INFINITY : err, wi = i;
    }
    int ok = worst <= RTOL;
    printf("%s lora-%-11s %-12s worst rel err %.2e%s\n", ok ? "ok  " : "FAIL", name, what, worst,
           ok ? "" : " (tolerance 1e-4)");
    if (!ok) {
        printf("     at element %d: expected %.9g, got %.9g\n", wi, want[wi], got[wi]);
        failures++;
    }
}

static float *read_f32(const StFile *f, const char *name, int n) {
    const StTensor *t = st_find(f, name);
    if (!t || (int)t->numel != n) {
        printf("FAIL %s: tensor %s missing or not %d elements\n", f->path, name, n);
        failures++;
        return NULL;
    }
    float *out = xmalloc((size_t)n * sizeof(float));
    Error e = {0};
    if (st_to_f32(t, out, &e)) {
        printf("FAIL %s\n", e.msg);
        failures++;
        free(out);
        return NULL;
    }
    return out;
}

static void outputs(Model *m, const int *tok, const int *tgt, int B, int T, float *out) {
    model_forward(m, tok, NULL, NULL, B, T);
    if (m->cfg.is_classifier)
        model_values(m, out);
    else
        model_logprobs(m, tgt, out, NULL);
}

static void check_fixture(const char *name, int classifier) {
    enum { B = 2, T = 8, N = B * T };
    char dir[256], path[256];
    snprintf(dir, sizeof dir, "%s/lora-%s", fixdir, name);
    snprintf(path, sizeof path, "%s/lora-%s.safetensors", fixdir, name);
    Error e = {0};
    StFile f;
    if (st_open(&f, path, &e)) {
        printf("FAIL %s\n", e.msg);
        failures++;
        return;
    }
    const char *key_on = classifier ? "values_on" : "logp_on", *key_off = classifier ? "values_off" : "logp_off";
    float *ftok = read_f32(&f, "tokens", N), *on = read_f32(&f, key_on, N), *off = read_f32(&f, key_off, N);
    st_close(&f);
    Model m;
    if (!ftok || !on || !off) goto out;
    if (model_load(&m, dir, &e)) {
        printf("FAIL lora-%s: model_load: %s\n", name, e.msg);
        failures++;
        goto out;
    }
    if (!m.lora || m.cfg.is_classifier != classifier) {
        printf("FAIL lora-%s: expected an adapter on a %s\n", name, classifier ? "classifier" : "causal LM");
        failures++;
        model_free(&m);
        goto out;
    }
    int tok[N], tgt[N];
    float got[N];
    for (int i = 0; i < N; i++) tok[i] = (int)ftok[i];
    for (int i = 0; i < N; i++) tgt[i] = i % T == T - 1 ? -1 : tok[i + 1];
    outputs(&m, tok, tgt, B, T, got);
    compare(name, "adapter on", got, on, N);
    lora_set_enabled(&m, 0);
    outputs(&m, tok, tgt, B, T, got);
    compare(name, "adapter off", got, off, N);
    lora_set_enabled(&m, 1);
    lora_merge(&m);
    outputs(&m, tok, tgt, B, T, got);
    compare(name, "merged", got, on, N);
    model_free(&m);
out:
    free(ftok);
    free(on);
    free(off);
}

int main(void) {
    check_fixture("gpt2", 0);
    check_fixture("llama", 0);
    check_fixture("gpt2-rm", 1);
    check_fixture("peft-llama", 0);
    /* PEFT's adapters on the newer families (tests/oracle/make_family_fixtures.py) */
    check_fixture("peft-phi3", 0);
    check_fixture("peft-gemma2", 0);
    if (failures) {
        printf("test_oracle_lora: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_oracle_lora: ok\n");
    return 0;
}
