/* chat_jinja.c — chat renderings by the model's own chat_template (jinja.h), turned
 * into ChatRender spans:
 *   - the variables are those transformers' apply_chat_template passes: messages,
 *     tools (None unless given), documents=None, add_generation_prompt, and the
 *     tokenizer's bos_token / eos_token strings (unset when it has none);
 *   - special spans: a special added token's string in text the template wrote itself
 *     (provenance tag 0); inside message data such strings stay text, as with the
 *     built-in layouts;
 *   - train spans: per assistant message, from where the rendering of the messages
 *     before it with the generation prompt ends (when that is a prefix of the whole;
 *     else from the first byte that came from the message's data, with the spaces the
 *     template wrote right before it) through the last byte of its data (content,
 *     tool calls; not the role), then a special token that follows it after optional
 *     spaces (<|im_end|>, <|eot_id|>, </s>,
 *     <end_of_turn>, <|end|>) — the closing token the model must learn to emit;
 *   - text spans also end after each space and newline, so the prompt rendering of a
 *     conversation ends on a span boundary of the full rendering (data.c needs one).
 * Message tags repeat after 250 messages (jinja.h), so train marks of conversations
 * longer than that can merge. */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "chat_impl.h"
#include "jinja.h"
#include "tokenizer_impl.h"

int chat_jinja_check(Tokenizer *tok, Error *e) {
    if (tok->jinja) return 0;
    const char *src = tok_chat_template(tok);
    if (!src) return err_set(e, EX_USAGE, "%s: no chat_template in tokenizer_config.json", tok_path(tok));
    return jinja_parse(src, strlen(src), &tok->jinja, e);
}

static void put_special(json_t *o, const char *key, const Tokenizer *tok, int id) {
    const char *s = id >= 0 ? tok_id_to_piece(tok, id) : NULL;
    if (s) json_object_set_new(o, key, json_string(s));
}

/* the special added token starting at text[i] whose bytes are all template-written */
static int special_at(const Tokenizer *tok, const JinjaOutput *o, size_t i) {
    int best = -1;
    size_t best_len = 0;
    for (int k = 0; k < tok->n_added; k++) {
        const AddedTok *a = &tok->added[k];
        if (!a->special || a->len <= best_len || a->len > o->len - i) continue;
        if (memcmp(o->text + i, a->content, a->len)) continue;
        size_t j = 0;
        while (j < a->len && !o->tag[i + j]) j++;
        if (j == a->len) best = k, best_len = a->len;
    }
    return best;
}

static void add_span(ChatRender *r, size_t off, size_t len, int train, int special) {
    if (!len) return;
    if (r->n_spans == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->spans = xrealloc(r->spans, (size_t)r->cap * sizeof *r->spans);
    }
    r->spans[r->n_spans++] = (ChatSpan){off, len, (unsigned char)train, (unsigned char)special};
}

static int build_spans(const Tokenizer *tok, const json_t *messages, const size_t *prompt_end, JinjaOutput *o,
                       ChatRender *out) {
    unsigned char *train = xcalloc(o->len + 1, 1);
    unsigned char *spec = xcalloc(o->len + 1, 1); /* 1 at the first byte of a special token, 2 inside */
    for (size_t i = 0; i < o->len;) {
        int k = o->tag[i] ? -1 : special_at(tok, o, i);
        if (k < 0) {
            i++;
            continue;
        }
        spec[i] = 1;
        memset(spec + i + 1, 2, tok->added[k].len - 1);
        i += tok->added[k].len;
    }
    size_t nm = json_array_size(messages);
    for (size_t m = 0; m < nm; m++) {
        const char *role = json_string_value(json_object_get(json_array_get(messages, m), "role"));
        if (!role || strcmp(role, "assistant")) continue;
        unsigned char tg = (unsigned char)(1 + m % 250);
        size_t first = o->len, last = 0;
        for (size_t i = 0; i < o->len; i++)
            if (o->tag[i] == tg) {
                if (first == o->len) first = i;
                last = i;
            }
        if (first == o->len) continue;
        /* spaces the template writes right before the reply train with it (Mistral's
         * ' ' + content): tokenizers attach a space to the word after it */
        while (first > 0 && o->text[first - 1] == ' ' && !o->tag[first - 1] && !spec[first - 1]) first--;
        /* where the rendering of the conversation before this message, with the
         * generation prompt, ends: what the model writes starts there (Qwen3's
         * <think></think> block included) */
        if (prompt_end[m] < first) first = prompt_end[m];
        size_t end = last + 1, j = end;
        while (j < o->len && o->text[j] == ' ' && !o->tag[j] && !spec[j]) j++;
        if (j < o->len && spec[j] == 1) {
            end = j + 1;
            while (end < o->len && spec[end] == 2) end++;
        }
        memset(train + first, 1, end - first);
    }
    for (size_t i = 0; i < o->len;) {
        size_t j = i + 1;
        if (spec[i] == 1) {
            while (j < o->len && spec[j] == 2) j++;
            add_span(out, i, j - i, train[i], 1);
        } else {
            while (j < o->len && !spec[j] && train[j] == train[i] && o->text[j - 1] != ' ' && o->text[j - 1] != '\n')
                j++;
            add_span(out, i, j - i, train[i], 0);
        }
        i = j;
    }
    free(train);
    free(spec);
    return 0;
}

int chat_render_json(Tokenizer *tok, const json_t *messages, const json_t *tools, int add_generation_prompt,
                     ChatRender *out, Error *e) {
    memset(out, 0, sizeof *out);
    int rc = chat_jinja_check(tok, e);
    if (rc) return rc;
    json_t *trusted = json_object(), *data = json_object();
    json_object_set_new(trusted, "add_generation_prompt", json_boolean(add_generation_prompt));
    put_special(trusted, "bos_token", tok, tok_bos_id(tok));
    put_special(trusted, "eos_token", tok, tok_eos_id(tok));
    json_object_set(data, "messages", (json_t *)messages);
    json_object_set_new(data, "tools", tools ? json_incref((json_t *)tools) : json_null());
    json_object_set_new(data, "documents", json_null());
    JinjaOutput o;
    rc = jinja_render(tok->jinja, trusted, data, &o, e);
    if (rc) {
        json_decref(trusted);
        json_decref(data);
        return rc;
    }
    /* per assistant message, the end of the prompt rendering before it when that is
     * a prefix of this rendering (templates that rewrite earlier turns have none) */
    size_t nm = json_array_size(messages);
    size_t *prompt_end = xmalloc((nm + 1) * sizeof *prompt_end);
    json_object_set_new(trusted, "add_generation_prompt", json_true());
    for (size_t m = 0; m < nm; m++) {
        prompt_end[m] = (size_t)-1;
        const char *role = json_string_value(json_object_get(json_array_get(messages, m), "role"));
        if (!role || strcmp(role, "assistant")) continue;
        json_t *head = json_array();
        for (size_t k = 0; k < m; k++) json_array_append(head, json_array_get(messages, k));
        json_object_set_new(data, "messages", head);
        JinjaOutput p;
        Error pe = {0};
        if (!jinja_render(tok->jinja, trusted, data, &p, &pe)) {
            if (p.len < o.len && !memcmp(p.text, o.text, p.len)) prompt_end[m] = p.len;
            jinja_output_free(&p);
        }
    }
    json_decref(trusted);
    json_decref(data);
    build_spans(tok, messages, prompt_end, &o, out);
    free(prompt_end);
    out->text = o.text;
    out->len = o.len;
    free(o.tag);
    return 0;
}

static json_t *messages_json(const ChatMessage *msgs, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        json_t *m = json_object();
        json_object_set_new(m, "role", json_string(msgs[i].role ? msgs[i].role : ""));
        json_object_set_new(m, "content", json_string(msgs[i].content ? msgs[i].content : ""));
        json_array_append_new(a, m);
    }
    return a;
}

int chat_render_tok(ChatTemplate tpl, Tokenizer *tok, const ChatMessage *msgs, int n, int add_generation_prompt,
                    ChatRender *out, Error *e) {
    if (tpl != CHAT_JINJA) return chat_render(tpl, msgs, n, add_generation_prompt, out, e);
    for (int i = 0; i < n; i++)
        if (!msgs[i].role || !*msgs[i].role || !msgs[i].content) {
            memset(out, 0, sizeof *out);
            return err_set(e, EX_DATAERR, "message %d: missing role or content", i);
        }
    json_t *m = messages_json(msgs, n);
    int rc = chat_render_json(tok, m, NULL, add_generation_prompt, out, e);
    json_decref(m);
    return rc;
}

int chat_jinja_matches(Tokenizer *tok, ChatTemplate fam) {
    static const ChatMessage probe[] = {{"system", "S."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}};
    static const struct { int from, n; } convs[] = {{1, 1}, {1, 2}, {0, 4}, {1, 3}};
    char *def = fam == CHAT_CHATML ? chat_default_system(tok_chat_template(tok)) : NULL;
    int same = 1;
    for (size_t c = 0; same && c < sizeof convs / sizeof *convs; c++)
        for (int gen = 0; same && gen < 2; gen++) {
            ChatMessage m[5];
            int n = 0;
            if (def && convs[c].from == 1) m[n++] = (ChatMessage){"system", def};
            for (int i = 0; i < convs[c].n; i++) m[n++] = probe[convs[c].from + i];
            ChatRender a, b;
            Error e = {0};
            if (chat_render(fam, m, n, gen, &a, &e)) {
                same = 0;
                break;
            }
            /* the template sees the conversation without the default system message */
            int skip = def && convs[c].from == 1;
            if (chat_render_tok(CHAT_JINJA, tok, m + skip, n - skip, gen, &b, &e)) {
                chat_render_free(&a);
                same = 0;
                break;
            }
            same = a.len == b.len && !memcmp(a.text, b.text, a.len);
            chat_render_free(&a);
            chat_render_free(&b);
        }
    free(def);
    return same;
}
