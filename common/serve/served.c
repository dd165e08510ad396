/* served.c — see served.h. */
#include "served.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "model/lora.h"

/* FNV-1a over the parameter words: cheap next to loading, and content-addressed. */
static uint64_t params_hash(const Model *m) {
    uint64_t h = 0xcbf29ce484222325ULL;
    const uint32_t *w = (const uint32_t *)m->params;
    for (size_t i = 0; i < m->n_params; i++) {
        h ^= w[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static char *dir_basename(const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/') b--;
    char *s = xmalloc(n - b + 1);
    memcpy(s, dir + b, n - b);
    s[n - b] = 0;
    return s;
}

int served_load(ServedModel *s, const char *dir, ChatTemplate tpl, Error *e) {
    memset(s, 0, sizeof *s);
    if (model_load(&s->m, dir, e)) return e->code;
    lora_merge(&s->m); /* an adapter directory: decode with the adapter folded in */
    if (s->m.cfg.is_classifier) {
        model_free(&s->m);
        return err_set(e, EX_USAGE, "%s is a sequence classifier; serve needs a causal LM", dir);
    }
    if (model_tokenizer_load(&s->tok, dir, e)) {
        model_free(&s->m);
        return e->code;
    }
    s->eos = gen_config_default();
    if (gen_collect_eos(&s->eos, &s->m, s->tok, dir, e)) {
        served_free(s);
        return e->code;
    }
    Error te;
    s->tpl_ok = chat_resolve(tpl, s->tok, &s->tpl, &te) == 0;
    if (s->tpl_ok && s->tpl == CHAT_CHATML && tpl == CHAT_AUTO)
        s->default_system = chat_default_system(tok_chat_template(s->tok));
    s->dir = xstrdup(dir);
    s->name = dir_basename(dir);
    char v[64];
    snprintf(v, sizeof v, "-%012llx", (unsigned long long)(params_hash(&s->m) & 0xffffffffffffULL));
    s->version = xmalloc(strlen(s->name) + strlen(v) + 1);
    strcpy(s->version, s->name);
    strcat(s->version, v);
    return 0;
}

void served_free(ServedModel *s) {
    if (s->tok) tok_free(s->tok);
    if (s->m.params) model_free(&s->m);
    free(s->dir);
    free(s->name);
    free(s->version);
    free(s->default_system);
    memset(s, 0, sizeof *s);
}

/* data.c's add_prefix rule: chatml/llama3 renderings carry their own BOS (or none);
 * everything else gets the tokenizer's post-processor prefix. */
static void add_prefix(const ServedModel *s, IntVec *ids, int chat) {
    if (chat && (s->tpl == CHAT_LLAMA3 || s->tpl == CHAT_CHATML)) return;
    tok_post_prefix(s->tok, ids);
}

int served_encode_prompt(ServedModel *s, const json_t *prompt, IntVec *out, Error *e) {
    if (json_is_string(prompt)) {
        add_prefix(s, out, 0);
        tok_encode(s->tok, json_string_value(prompt), json_string_length(prompt), 0, out);
        return 0;
    }
    if (!json_is_array(prompt)) return err_set(e, EX_DATAERR, "the prompt must be a string or a list of messages");
    if (!s->tpl_ok)
        return err_set(e, EX_USAGE, "%s has no recognisable chat template; start serve with --template", s->dir);
    size_t k = json_array_size(prompt);
    if (k == 0) return err_set(e, EX_DATAERR, "field \"messages\" is empty");
    ChatMessage *m = xcalloc(k + 1, sizeof *m);
    size_t n = 0;
    if (s->default_system) {
        const char *r0 = json_string_value(json_object_get(json_array_get(prompt, 0), "role"));
        if (!r0 || strcmp(r0, "system")) m[n].role = "system", m[n++].content = s->default_system;
    }
    for (size_t i = 0; i < k; i++) {
        const json_t *o = json_array_get(prompt, i);
        const json_t *role = json_object_get(o, "role"), *content = json_object_get(o, "content");
        if (!json_is_object(o) || !json_is_string(role) || !json_is_string(content)) {
            free(m);
            return err_set(e, EX_DATAERR, "field \"messages[%zu]\" must be an object with string role and content", i);
        }
        if (strlen(json_string_value(content)) != json_string_length(content)) {
            free(m);
            return err_set(e, EX_DATAERR, "field \"messages[%zu].content\" contains a NUL character", i);
        }
        m[n].role = json_string_value(role);
        m[n++].content = json_string_value(content);
    }
    ChatRender cr = {0};
    int rc = chat_render(s->tpl, m, (int)n, 1, &cr, e);
    if (!rc) {
        add_prefix(s, out, 1);
        rc = chat_tokenize(s->tok, &cr, out, NULL, e);
    }
    chat_render_free(&cr);
    free(m);
    return rc;
}
