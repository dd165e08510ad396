/* rl_ckpt.c — ppo_state.safetensors (rl_ckpt.h). */
#include "rl_ckpt.h"

#include <stdio.h>
#include <stdlib.h>

#include "formats/safetensors.h"
#include "base/util.h"

int rl_ckpt_write(const char *dir, const AdamW *vopt, const RlKlController *klc, const RlState *rls, Error *e) {
    StWriter w;
    st_writer_init(&w);
    char buf[64];
    if (vopt) adamw_state_add(&w, vopt, "value_");
    snprintf(buf, sizeof buf, "%.17g", klc->coef);
    st_writer_meta(&w, "kl_coef", buf);
    snprintf(buf, sizeof buf, "%.17g", rls->baseline);
    st_writer_meta(&w, "baseline", buf);
    snprintf(buf, sizeof buf, "%d", rls->baseline_set);
    st_writer_meta(&w, "baseline_set", buf);
    char *sp = path_join(dir, "ppo_state.safetensors");
    int rc = st_writer_write(&w, sp, ST_F32, e);
    free(sp);
    st_writer_free(&w);
    return rc;
}

int rl_ckpt_read(const char *dir, AdamW *vopt, RlKlController *klc, RlState *rls, Error *e) {
    char *path = path_join(dir, "ppo_state.safetensors");
    StFile sf;
    int rc = st_open(&sf, path, e);
    if (rc) {
        free(path);
        return rc;
    }
    const char *kc = st_meta_get(&sf, "kl_coef"), *bl = st_meta_get(&sf, "baseline"),
               *bs = st_meta_get(&sf, "baseline_set");
    if (!kc || !bl || !bs) {
        rc = err_set(e, EX_DATAERR, "%s: metadata kl_coef, baseline, baseline_set expected", path);
    } else {
        klc->coef = strtod(kc, NULL);
        rls->baseline = strtod(bl, NULL);
        rls->baseline_set = atoi(bs);
        if (vopt) rc = adamw_state_read(vopt, &sf, "value_", path, e);
    }
    st_close(&sf);
    free(path);
    return rc;
}
