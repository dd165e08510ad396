/* fuzz_state.c — the state files a resumed run reads: the metrics log kept up to a
 * step (metrics.c), trainer_state.json (checkpoint.c trainer_resume),
 * optimizer.safetensors (optim.c adamw_state_read) and ppo_state.safetensors
 * (rl_ckpt.c).  The first byte chooses the file; the rest is its content. */
#include "base/metrics.h"
#include "formats/safetensors.h"
#include "fuzz.h"
#include "rl/rl_ckpt.h"
#include "train/train_internal.h"

static void opt4(AdamW *o) {
    OptimGroup all = {0, 4, 1};
    adamw_init(o, 4, &all, 1, 0.9f, 0.999f, 1e-8f, 0);
}

static int no_load(void *ctx, const char *dir, Error *e) {
    (void)ctx, (void)dir, (void)e;
    return 0;
}

static void state_json(const char *dir) {
    TrainFlags f;
    train_flags_default(&f, "fuzz");
    f.quiet = 1;
    Model m;
    memset(&m, 0, sizeof m);
    TrainTask t;
    memset(&t, 0, sizeof t);
    t.model = &m;
    t.n_train = 8;
    t.load = no_load;
    Trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.f = &f;
    tr.t = &t;
    tr.steps_per_epoch = 1;
    tr.n_ranks = 1;
    Error e;
    opt4(&tr.opt);
    trainer_resume(&tr, dir, &e);
    adamw_free(&tr.opt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const uint8_t *body = data + 2;
    size_t n = size - 2;
    Error e;
    switch (data[0] % 4) {
    case 0: { /* the metrics log of a resumed run */
        const char *p = fuzz_write("log.jsonl", body, n);
        MetricsLog l;
        if (metrics_log_open(&l, p, data[1], &e) == 0) metrics_log_close(&l, &e);
        break;
    }
    case 1: { /* ppo_state.safetensors */
        fuzz_write("ppo_state.safetensors", body, n);
        AdamW o;
        opt4(&o);
        RlKlController klc = {0.05, 0, 10000};
        RlState rls = {0, 0};
        rl_ckpt_read(fuzz_dir(), data[1] & 1 ? &o : NULL, &klc, &rls, &e);
        adamw_free(&o);
        break;
    }
    case 2: { /* optimizer.safetensors */
        const char *p = fuzz_write("optimizer.safetensors", body, n);
        StFile f;
        if (st_open(&f, p, &e) == 0) {
            AdamW o;
            opt4(&o);
            adamw_state_read(&o, &f, "", p, &e);
            adamw_free(&o);
            st_close(&f);
        }
        break;
    }
    default: /* trainer_state.json */
        fuzz_write("trainer_state.json", body, n);
        state_json(fuzz_dir());
        break;
    }
    return 0;
}
