/* engine.h — continuous batching for a server: requests arrive at any time, each
 * with its own sampling settings, and share one decode batch.
 *
 * One engine thread owns the model.  It keeps `slots` sequences in a KV cache;
 * whenever a slot is free it takes the next waiting choice (a request asks for n
 * choices), prefills its prompt (the other choices of the same request copy the
 * prefilled keys and values instead of running the prompt again), and every step
 * samples one token for each live sequence and runs one batched decode step
 * (generate.h: gen_forward with the batch-invariant kernels, Sampler, one Rng per
 * sequence).  A sequence finishing frees its slot for the next waiting choice at
 * once, so long and short requests never wait for each other.
 *
 * Reproducibility: choice i of a request with seed S draws from the Rng
 * gen_rng_seed(S, 0, i) and each row's decode does not depend on the other rows,
 * so a request gives the same completions whatever else is being served, and the
 * same as `rollout --seed S -n N` on that one prompt.
 *
 * Reload: engine_reload loads the new directory beside the running model; from then
 * on no new request starts, the requests already started finish on the old weights
 * (nothing in flight is dropped), then the engine switches and the waiting ones
 * start on the new weights.  Each request records the version it ran on.
 * The engine thread is the only user of the tokenizer (prompts are encoded when
 * admitted), so reloading a model with another tokenizer is safe.
 * Not for: HTTP, JSON responses or logs (http.h, api.h, ilog.h). */
#ifndef CHERRY_ENGINE_H
#define CHERRY_ENGINE_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "base/err.h"
#include "generate/sampler.h"
#include "kernels/decode.h"
#include "served.h"

#define GENJOB_MAX_STOP 4

typedef struct GenChoice {
    char *bytes; /* raw bytes of the generated tokens so far (special tokens skipped) */
    size_t len, cap;
    int *tokens;
    int n_tokens, tok_cap;
    int done;
    int finish_stop; /* 1: EOS or stop string ("stop"); 0: max_tokens or context ("length") */
    int stop_index;  /* -1 unless a stop string ended it */
    int eos;
    char *text; /* when done: the completion as rollout writes it (decoded, cut before the stop string) */
    size_t text_len;
} GenChoice;

typedef struct GenJob {
    /* inputs: set before engine_submit, read-only afterwards */
    json_t *prompt; /* a string or a message list (owned; a deep copy for the engine) */
    int n;          /* choices, 1..64 */
    SamplerConfig sampler;
    int max_tokens;
    uint64_t seed;
    char *stop[GENJOB_MAX_STOP];
    int n_stop;
    /* outputs, guarded by mu; cv is broadcast on every change */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    GenChoice *out; /* [n] */
    int n_done;
    int prompt_tokens;
    long updates; /* bumped on every change (streaming readers wait for it to move) */
    int error;    /* sysexits code when the request could not run (prompt too long...) */
    char errmsg[512];
    char *version; /* the model version that ran it (set when admitted) */
    int cancelled; /* set by the client side: stop generating, nobody is reading */
    /* engine bookkeeping */
    int admitted, live, queued, refs; /* admitted/live/queued: engine thread and E->mu only */
    struct GenJob *next;
} GenJob;

/* A job for prompt (copied) with n choices; refs = 1 (the caller's). */
GenJob *gen_job_new(const json_t *prompt, int n);
void gen_job_unref(GenJob *j);
/* Blocks until every choice is done or the job failed.  Returns j->error. */
int gen_job_wait(GenJob *j);

typedef struct EngineConfig {
    int slots;         /* sequences decoded together (default 8) */
    int context;       /* KV cache positions per sequence (default: the model's, at most 1024) */
    DecodeDtype dtype; /* the decode weights (--gen-dtype; default DECODE_FP32): packed
                        * once per model served, again after each reload */
} EngineConfig;

typedef struct Engine Engine;

/* Takes ownership of *s (loaded by served_load) and starts the engine thread. */
Engine *engine_start(ServedModel *s, const EngineConfig *c, Error *e);
/* Stops the thread (requests still waiting fail with EX_UNAVAILABLE) and frees. */
void engine_stop(Engine *E);
/* Queues a job (the engine takes its own reference).  EX_USAGE for a bad config. */
int engine_submit(Engine *E, GenJob *j, Error *e);
/* Loads DIR (tpl as in served_load) and switches to it as described above; returns
 * when the new model serves.  Errors of served_load (the old model keeps serving). */
int engine_reload(Engine *E, const char *dir, ChatTemplate tpl, Error *e);
/* Copies of the served model's name, version and directory (caller frees each). */
void engine_model_info(Engine *E, char **name, char **version, char **dir);
/* Counters for /health: requests waiting, sequences running. */
void engine_load_info(Engine *E, int *waiting, int *running);

#endif
