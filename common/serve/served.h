/* served.h — one model directory as the server holds it: weights, tokenizer, EOS ids,
 * chat template, and a version name that says which weights produced a completion.
 *
 * The version is "<directory basename>-<12 hex digits>" where the digits hash the
 * parameter values, so two loads of the same weights have the same version and a
 * retrained directory at the same path gets a new one; every logged record names it.
 * Prompts are encoded as the data layer encodes a prompt-only record (data.h:
 * string prompts get the tokenizer's BOS prefix, message lists are rendered with the
 * chat template and the generation prompt, a chatml template's default system
 * message is added when the conversation has none), so `serve` and `rollout` see the
 * same ids for the same prompt.
 * Not for: generation (engine.h) or HTTP (http.h). */
#ifndef CHERRY_SERVED_H
#define CHERRY_SERVED_H

#include <jansson.h>

#include "base/err.h"
#include "formats/chat.h"
#include "formats/tokenizer.h"
#include "generate/generate.h"
#include "model/model.h"

typedef struct ServedModel {
    char *dir;
    char *name;    /* what clients put in "model": the directory's basename */
    char *version; /* name + "-" + parameter hash */
    Model m;
    Tokenizer *tok;
    GenConfig eos; /* only eos_ids/n_eos are used */
    ChatTemplate tpl;
    int tpl_ok;           /* 0: the tokenizer has no recognisable template (message prompts are EX_USAGE) */
    char *default_system; /* chatml templates' default system message, or NULL */
} ServedModel;

/* Loads DIR (a causal LM with tokenizer.json).  tpl: CHAT_AUTO or a fixed template.
 * Errors: those of model_load/model_tokenizer_load; EX_USAGE for a classifier. */
int served_load(ServedModel *s, const char *dir, ChatTemplate tpl, Error *e);
void served_free(ServedModel *s);

/* A prompt (JSON string, or list of {role, content} messages) -> ids appended to
 * out.  Errors: EX_DATAERR naming the field ("messages[1].role must be a string"),
 * EX_USAGE when messages need a template this model does not have. */
int served_encode_prompt(ServedModel *s, const json_t *prompt, IntVec *out, Error *e);

#endif
