/* optim.c — AdamW, gradient clipping, learning-rate schedules.  See optim.h.
 *
 * Scalars (bias corrections, step size) are computed in double and applied in
 * float, as PyTorch does when a Python float meets a float32 tensor, so our updates
 * round like torch's. */
#include "optim.h"
#include "kernels/gemm.h"
#include "model/lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void adamw_init(AdamW *o, size_t n, const OptimGroup *groups, int n_groups, float beta1, float beta2, float eps,
                float weight_decay) {
    memset(o, 0, sizeof *o);
    o->n = n;
    o->m = xaligned_alloc(n * sizeof(float));
    o->v = xaligned_alloc(n * sizeof(float));
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    o->n_groups = n_groups;
    o->groups = xmalloc((size_t)(n_groups > 0 ? n_groups : 1) * sizeof *o->groups);
    if (n_groups > 0) memcpy(o->groups, groups, (size_t)n_groups * sizeof *groups);
    size_t covered = 0;
    for (int i = 0; i < n_groups; i++) {
        if (groups[i].offset + groups[i].numel > n)
            die_internal("adamw_init: group %d [%zu, +%zu) outside %zu parameters", i, groups[i].offset,
                         groups[i].numel, n);
        covered += groups[i].numel;
    }
    if (covered != n) die_internal("adamw_init: groups cover %zu of %zu parameters", covered, n);
}

void adamw_init_model(AdamW *o, const Model *m, float weight_decay) {
    if (m->lora) {
        /* LoRA (lora.h): only the adapter block is optimised; every adapter tensor
         * (A, B, the score copy) is a 2-D weight, so all of it decays (HF Trainer rule) */
        OptimGroup all = {0, m->lora->n_params, 1};
        adamw_init(o, m->lora->n_params, &all, 1, ADAMW_BETA1, ADAMW_BETA2, ADAMW_EPS, weight_decay);
        return;
    }
    OptimGroup *g = xmalloc((size_t)(m->n_tensors > 0 ? m->n_tensors : 1) * sizeof *g);
    for (int i = 0; i < m->n_tensors; i++) {
        g[i].offset = m->tensors[i].offset;
        g[i].numel = m->tensors[i].numel;
        g[i].decay = m->tensors[i].decay;
    }
    adamw_init(o, m->n_params, g, m->n_tensors, ADAMW_BETA1, ADAMW_BETA2, ADAMW_EPS, weight_decay);
    free(g);
}

void adamw_free(AdamW *o) {
    gemm_bf16_weights_forget_all(); /* the weights it updated may be freed next */
    free(o->m);
    free(o->v);
    free(o->groups);
    memset(o, 0, sizeof *o);
}

#define ADAMW_CHUNK 4096L /* elements per task: 16 KiB of each array, in L1/L2 */

void adamw_step(AdamW *o, float *params, const float *grads, float lr) {
    adamw_step_scaled(o, params, grads, lr, 1.0f);
}

static void adamw_update(AdamW *o, float *params, const float *grads, float *clear, float lr, float gscale);

void adamw_step_scaled(AdamW *o, float *params, const float *grads, float lr, float gscale) {
    adamw_update(o, params, grads, NULL, lr, gscale);
}

void adamw_step_scaled_clear(AdamW *o, float *params, float *grads, float lr, float gscale) {
    adamw_update(o, params, grads, grads, lr, gscale);
}

/* The update; with clear (= grads), each gradient is set to 0 once read: the next
 * step's zeroing done in this pass, where every gradient line is in cache already,
 * instead of a pass of its own over all of them (a write-only pass of 4 bytes per
 * parameter with its own read-for-ownership, 3-5% of a bf16 GPT-2 step at B=4,T=64). */
static void adamw_update(AdamW *o, float *params, const float *grads, float *clear, float lr, float gscale) {
    o->t++;
    const int scaled = gscale != 1.0f; /* multiplying by exactly 1 changes nothing */
    /* torch/optim/adamw.py: bias_correction1 = 1 - beta1 ** step, step_size =
     * lr / bias_correction1, bias_correction2_sqrt = sqrt(1 - beta2 ** step). */
    double bc1 = 1.0 - pow((double)o->beta1, (double)o->t);
    double bc2 = 1.0 - pow((double)o->beta2, (double)o->t);
    const float step_size = (float)((double)lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float decay_mul = (float)(1.0 - (double)lr * (double)o->weight_decay);
    const float b1c = (float)(1.0 - (double)o->beta1), b2 = o->beta2, b2c = (float)(1.0 - (double)o->beta2);
    const float eps = o->eps;
    float *restrict m = o->m, *restrict v = o->v;
    /* --mixed-precision bf16: the new weights' bf16 copy is written here, chunk by
     * chunk while the chunk is in cache, instead of re-reading all weights before the
     * next product (gemm_bf16_weights_begin; NULL when there is no such copy yet) */
    uint16_t *bf = gemm_bf16_weights_begin(params, o->n);
#pragma omp parallel
    for (int gi = 0; gi < o->n_groups; gi++) {
        const OptimGroup *g = &o->groups[gi];
        const int decay = g->decay && o->weight_decay != 0.0f;
        const long off = (long)g->offset, end = (long)(g->offset + g->numel);
        const long nch = (end - off + ADAMW_CHUNK - 1) / ADAMW_CHUNK;
#pragma omp for schedule(guided) nowait /* a thread on a shared core takes fewer chunks */
        for (long c = 0; c < nch; c++) {
            const long i0 = off + c * ADAMW_CHUNK, i1 = i0 + ADAMW_CHUNK < end ? i0 + ADAMW_CHUNK : end;
#pragma omp simd
            for (long i = i0; i < i1; i++) {
                float p = params[i], gr = grads[i];
                if (clear) clear[i] = 0.0f;
                if (scaled) gr *= gscale; /* what grad_clip_norm's pass would have stored */
                if (decay) p *= decay_mul;
                float mi = m[i] + b1c * (gr - m[i]);
                float vi = b2 * v[i] + (b2c * gr) * gr; /* addcmul_: self + value*t1*t2 */
                m[i] = mi;
                v[i] = vi;
                float denom = sqrtf(vi) / bc2_sqrt + eps;
                params[i] = p + ((-step_size) * mi) / denom; /* addcdiv_: self + value*t1/t2 */
            }
            if (bf) gemm_bf16_convert(bf + i0, params + i0, (size_t)(i1 - i0));
        }
    }
    /* --mixed-precision bf16: the next products read one bf16 copy of the new weights */
    if (bf)
        gemm_bf16_weights_written(params, o->n);
    else
        gemm_bf16_weights_updated(params, o->n);
}

#define NORM_CHUNK ((size_t)1 << 16)
#define NORM_LANES 32

/* sum of g[i]^2 in double, element i into lane i % NORM_LANES and the lanes added
 * in order at the end: one serial chain of double additions (4 cycles each) made
 * this pass compute-bound at half of AdamW's time; 32 independent lanes (four
 * AVX-512 registers) keep it at memory speed.  The order depends on n only. */
static double sum_squares_lanes(const float *g, size_t n) {
    double acc[NORM_LANES] = {0};
    size_t i = 0;
    for (; i + NORM_LANES <= n; i += NORM_LANES)
        for (int k = 0; k < NORM_LANES; k++) acc[k] += (double)g[i + k] * g[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += (double)g[i] * g[i];
    double s = 0;
    for (int k = 0; k < NORM_LANES; k++) s += acc[k];
    return s;
}

void adamw_state_add(StWriter *w, const AdamW *o, const char *prefix) {
    char name[64];
    int64_t shape[1] = {(int64_t)o->n};
    snprintf(name, sizeof name, "%sexp_avg", prefix);
    st_writer_add(w, name, o->m, 1, shape);
    snprintf(name, sizeof name, "%sexp_avg_sq", prefix);
    st_writer_add(w, name, o->v, 1, shape);
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", o->t);
    snprintf(name, sizeof name, "%sstep", prefix);
    st_writer_meta(w, name, buf);
}

int adamw_state_read(AdamW *o, const StFile *f, const char *prefix, const char *path, Error *e) {
    char nm[64], nv[64], ns[64];
    snprintf(nm, sizeof nm, "%sexp_avg", prefix);
    snprintf(nv, sizeof nv, "%sexp_avg_sq", prefix);
    snprintf(ns, sizeof ns, "%sstep", prefix);
    const StTensor *m = st_find(f, nm), *v = st_find(f, nv);
    const char *step_s = st_meta_get(f, ns);
    if (!m || !v || m->dtype != ST_F32 || v->dtype != ST_F32 || m->numel != o->n || v->numel != o->n)
        return err_set(e, EX_DATAERR, "%s: expected F32 tensors %s and %s of %zu elements", path, nm, nv, o->n);
    if (!step_s || atol(step_s) < 0) return err_set(e, EX_DATAERR, "%s: metadata \"%s\" missing or negative", path, ns);
    memcpy(o->m, m->data, o->n * sizeof(float));
    memcpy(o->v, v->data, o->n * sizeof(float));
    o->t = atol(step_s);
    return 0;
}

double grad_norm(const float *grads, size_t n) {
    size_t nchunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    if (nchunks == 0) return 0.0;
    double *part = xmalloc(nchunks * sizeof(double));
#pragma omp parallel for schedule(static)
    for (long c = 0; c < (long)nchunks; c++) {
        size_t lo = (size_t)c * NORM_CHUNK, hi = lo + NORM_CHUNK < n ? lo + NORM_CHUNK : n;
        part[c] = sum_squares_lanes(grads + lo, hi - lo);
    }
    double total = 0;
    for (size_t c = 0; c < nchunks; c++) total += part[c];
    free(part);
    return sqrt(total);
}

float grad_clip_coef(double norm, double max_norm) {
    if (max_norm <= 0 || !isfinite(norm)) return 1.0f;
    /* torch/nn/utils/clip_grad.py: clip_coef = max_norm / (total_norm + 1e-6),
     * clamped to at most 1.0, multiplied into every gradient. */
    double coef = max_norm / (norm + 1e-6);
    return coef < 1.0 ? (float)coef : 1.0f;
}

double grad_clip_norm(float *grads, size_t n, double max_norm) {
    double norm = grad_norm(grads, n);
    const float c = grad_clip_coef(norm, max_norm);
    if (c != 1.0f) { /* multiplying by exactly 1.0 changes nothing, so we skip it */
#pragma omp parallel for schedule(static)
        for (long i = 0; i < (long)n; i++) grads[i] *= c;
    }
    return norm;
}

int lr_schedule_parse(const char *s) {
    if (!strcmp(s, "linear")) return SCHED_LINEAR;
    if (!strcmp(s, "cosine")) return SCHED_COSINE;
    if (!strcmp(s, "constant")) return SCHED_CONSTANT;
    return -1;
}

const char *lr_schedule_name(LrSchedule s) {
    switch (s) {
    case SCHED_LINEAR:
        return "linear";
    case SCHED_COSINE:
        return "cosine";
    case SCHED_CONSTANT:
        return "constant";
    }
    return "?";
}

double lr_lambda(LrSchedule s, long step, long warmup, long total) {
    /* transformers/optimization.py: _get_{linear,cosine,constant}_schedule_with_warmup_lr_lambda */
    if (step < warmup) return (double)step / (double)(warmup > 1 ? warmup : 1);
    long span = total - warmup > 1 ? total - warmup : 1;
    switch (s) {
    case SCHED_LINEAR: {
        double r = (double)(total - step) / (double)span;
        return r > 0 ? r : 0;
    }
    case SCHED_COSINE: {
        double progress = (double)(step - warmup) / (double)span;
        double r = 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress));
        return r > 0 ? r : 0;
    }
    case SCHED_CONSTANT:
        return 1.0;
    }
    return 1.0;
}
