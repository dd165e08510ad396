/* generate_eos.c — which token ids end a generation (generate.h: gen_collect_eos).
 * transformers' GenerationConfig.eos_token_id may be an int or a list and is read
 * from generation_config.json; config.json's and the tokenizer's eos token count
 * too, so a chat model that ends its turn with <|im_end|> stops there.
 * Not for: stop strings (matched on bytes in generate.c). */
#include <jansson.h>
#include <stdlib.h>

#include "generate.h"
#include "base/util.h"

void gen_add_eos(GenConfig *g, long id) {
    if (id < 0 || id > 0x7fffffff) return;
    for (int i = 0; i < g->n_eos; i++)
        if (g->eos_ids[i] == id) return;
    if (g->n_eos < GEN_MAX_EOS) g->eos_ids[g->n_eos++] = (int)id;
}

int gen_collect_eos(GenConfig *g, const Model *m, const Tokenizer *tok, const char *dir, Error *e) {
    gen_add_eos(g, tok_eos_id(tok));
    gen_add_eos(g, m->cfg.eos_id);
    char *path = path_join(dir, "generation_config.json");
    int rc = 0;
    if (file_exists(path)) {
        json_error_t je;
        json_t *root = json_load_file(path, 0, &je);
        if (!root) {
            rc = err_set(e, EX_DATAERR, "%s:%d: %s", path, je.line, je.text);
        } else {
            const json_t *v = json_object_get(root, "eos_token_id");
            if (json_is_integer(v)) gen_add_eos(g, (long)json_integer_value(v));
            for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++)
                if (json_is_integer(json_array_get(v, i)))
                    gen_add_eos(g, (long)json_integer_value(json_array_get(v, i)));
            json_decref(root);
        }
    }
    free(path);
    return rc;
}
