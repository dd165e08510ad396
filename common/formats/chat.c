/* chat.c — chat templates written out in C (see chat.h for the four families and
 * what trains).  The Jinja sources they reproduce:
 *   chatml: "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' +
 *            message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if
 *            add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
 *            (SmolLM2-Instruct / Qwen tokenizer_config.json)
 *   llama3:  Meta-Llama-3-8B-Instruct tokenizer_config.json: bos_token before the
 *            first message, '<|start_header_id|>' + role + '<|end_header_id|>\n\n' +
 *            content | trim + '<|eot_id|>', generation prompt
 *            '<|start_header_id|>assistant<|end_header_id|>\n\n'
 *   hh:      Anthropic hh-rlhf transcripts ("\n\nHuman: ...\n\nAssistant: ...").
 * Not for: general Jinja. */
#include "chat.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "chat_impl.h"

int chat_template_parse(const char *name, ChatTemplate *out, Error *e) {
    static const struct {
        const char *name;
        ChatTemplate t;
    } names[] = {
        {"auto", CHAT_AUTO},     {"plain", CHAT_PLAIN},  {"hh", CHAT_HH},
        {"chatml", CHAT_CHATML}, {"llama3", CHAT_LLAMA3}, {"jinja", CHAT_JINJA}};
    for (size_t i = 0; name && i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i].name)) {
            *out = names[i].t;
            return 0;
        }
    return err_set(e, EX_USAGE, "unknown template \"%s\" (expected auto, plain, hh, chatml, llama3 or jinja)",
                   name ? name : "(null)");
}

const char *chat_template_name(ChatTemplate tpl) {
    switch (tpl) {
    case CHAT_AUTO:
        return "auto";
    case CHAT_PLAIN:
        return "plain";
    case CHAT_HH:
        return "hh";
    case CHAT_CHATML:
        return "chatml";
    case CHAT_LLAMA3:
        return "llama3";
    case CHAT_JINJA:
        return "jinja";
    }
    return "?";
}

int chat_detect(const char *src, ChatTemplate *out, Error *e) {
    if (!src)
        return err_set(e, EX_USAGE,
                       "no chat_template in tokenizer_config.json; pass --template plain|hh|chatml|llama3");
    if (strstr(src, "<|start_header_id|>") && strstr(src, "<|eot_id|>"))
        *out = CHAT_LLAMA3;
    else if (strstr(src, "<|im_start|>") && strstr(src, "<|im_end|>"))
        *out = CHAT_CHATML;
    else if (strstr(src, "Human:") && strstr(src, "Assistant:"))
        *out = CHAT_HH;
    else
        *out = CHAT_JINJA;
    return 0;
}

int chat_resolve(ChatTemplate tpl, const Tokenizer *tok, ChatTemplate *out, Error *e) {
    const char *src = tok ? tok_chat_template(tok) : NULL;
    if (tpl != CHAT_AUTO && tpl != CHAT_JINJA) {
        *out = tpl;
        return 0;
    }
    if (tpl == CHAT_JINJA && !src)
        return err_set(e, EX_USAGE, "--template jinja: no chat_template in tokenizer_config.json");
    ChatTemplate fam;
    int rc = chat_detect(src, &fam, e);
    if (rc) return rc;
    if (tpl == CHAT_AUTO && fam == CHAT_HH) { /* hh-rlhf transcripts: not a Jinja family we check */
        *out = fam;
        return 0;
    }
    /* the model's template must be runnable, whether chosen or only compared with */
    Error je = {0};
    int bad = chat_jinja_check((Tokenizer *)tok, &je);
    if (tpl == CHAT_JINJA || fam == CHAT_JINJA) {
        if (bad) {
            *e = je;
            return err_prefix(e, "%s: the model's chat_template", tok_path(tok));
        }
        *out = CHAT_JINJA;
        return 0;
    }
    *out = bad || chat_jinja_matches((Tokenizer *)tok, fam) ? fam : CHAT_JINJA;
    return 0;
}

char *chat_default_system(const char *src) {
    if (!src || (!strstr(src, "!= 'system'") && !strstr(src, "!= \"system\""))) return NULL;
    static const char head[] = "<|im_start|>system";
    for (const char *p = strstr(src, head); p; p = strstr(p + 1, head)) {
        const char *q = p + sizeof head - 1;
        if (*q == '\n')
            q++;
        else if (q[0] == '\\' && q[1] == 'n')
            q += 2;
        else
            continue;
        const char *end = strstr(q, "<|im_end|>");
        if (!end || end == q) continue;
        /* a literal message only: no Jinja expressions or string delimiters inside */
        int clean = 1;
        for (const char *c = q; c < end && clean; c++)
            if (*c == '\'' || *c == '"' || (c[0] == '{' && (c[1] == '{' || c[1] == '%'))) clean = 0;
        if (!clean) continue;
        char *out = xmalloc((size_t)(end - q) + 1);
        size_t n = 0;
        for (const char *c = q; c < end; c++) {
            if (c[0] == '\\' && c[1] == 'n') { /* Jinja string escape */
                out[n++] = '\n';
                c++;
            } else {
                out[n++] = *c;
            }
        }
        out[n] = 0;
        return out;
    }
    return NULL;
}

/* ---- rendering ---- */
static void add_span(ChatRender *r, const char *s, size_t n, int train, int special) {
    if (!n) return;
    if (r->n_spans == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->spans = xrealloc(r->spans, (size_t)r->cap * sizeof *r->spans);
    }
    r->text = xrealloc(r->text, r->len + n + 1);
    memcpy(r->text + r->len, s, n);
    r->spans[r->n_spans++] = (ChatSpan){r->len, n, (unsigned char)train, (unsigned char)special};
    r->len += n;
    r->text[r->len] = 0;
}
static void add_text(ChatRender *r, const char *s, int train) {
    add_span(r, s, strlen(s), train, 0);
}
static void add_special(ChatRender *r, const char *s, int train) {
    add_span(r, s, strlen(s), train, 1);
}

/* Jinja's trim: strips leading and trailing whitespace (Python str.strip). */
static void trimmed(const char *s, const char **start, size_t *len) {
    size_t n = strlen(s);
    size_t a = 0;
    while (a < n && (s[a] == ' ' || s[a] == '\t' || s[a] == '\n' || s[a] == '\r' || s[a] == '\f' || s[a] == '\v')) a++;
    while (n > a && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\f' ||
                     s[n - 1] == '\v'))
        n--;
    *start = s + a;
    *len = n - a;
}

int chat_render(ChatTemplate tpl, const ChatMessage *msgs, int n, int add_generation_prompt, ChatRender *out,
                Error *e) {
    memset(out, 0, sizeof *out);
    out->text = xmalloc(1);
    out->text[0] = 0;
    for (int i = 0; i < n; i++) {
        const char *role = msgs[i].role, *content = msgs[i].content;
        if (!role || !*role || !content) {
            chat_render_free(out);
            return err_set(e, EX_DATAERR, "message %d: missing role or content", i);
        }
        int is_asst = !strcmp(role, "assistant");
        switch (tpl) {
        case CHAT_PLAIN:
            if (i) add_text(out, "\n\n", 0);
            add_text(out, content, is_asst);
            break;
        case CHAT_HH:
            if (!strcmp(role, "system")) {
                add_text(out, content, 0);
            } else if (!strcmp(role, "user")) {
                add_text(out, "\n\nHuman: ", 0);
                add_text(out, content, 0);
            } else if (is_asst) {
                add_text(out, "\n\nAssistant:", 0);
                /* the reply carries its leading space, as hh-rlhf completions do */
                add_text(out, " ", 1);
                add_text(out, content, 1);
            } else {
                chat_render_free(out);
                return err_set(e, EX_DATAERR, "message %d: role \"%s\" is not system, user or assistant (hh template)",
                               i, role);
            }
            break;
        case CHAT_CHATML:
            add_special(out, "<|im_start|>", 0);
            add_text(out, role, 0);
            add_text(out, "\n", 0);
            add_text(out, content, is_asst);
            add_special(out, "<|im_end|>", is_asst);
            add_text(out, "\n", 0);
            break;
        case CHAT_LLAMA3: {
            if (i == 0) add_special(out, "<|begin_of_text|>", 0);
            add_special(out, "<|start_header_id|>", 0);
            add_text(out, role, 0);
            add_special(out, "<|end_header_id|>", 0);
            add_text(out, "\n\n", 0);
            const char *c;
            size_t cl;
            trimmed(content, &c, &cl);
            add_span(out, c, cl, is_asst, 0);
            add_special(out, "<|eot_id|>", is_asst);
            break;
        }
        case CHAT_AUTO:
        case CHAT_JINJA:
            chat_render_free(out);
            return err_set(e, EX_SOFTWARE, "chat_render: template %s needs chat_render_tok",
                           tpl == CHAT_AUTO ? "not resolved (call chat_resolve first)" : "jinja");
        }
    }
    if (add_generation_prompt) {
        switch (tpl) {
        case CHAT_PLAIN:
            if (n) add_text(out, "\n\n", 0);
            break;
        case CHAT_HH:
            add_text(out, "\n\nAssistant:", 0);
            break;
        case CHAT_CHATML:
            add_special(out, "<|im_start|>", 0);
            add_text(out, "assistant\n", 0);
            break;
        case CHAT_LLAMA3:
            add_special(out, "<|start_header_id|>", 0);
            add_text(out, "assistant", 0);
            add_special(out, "<|end_header_id|>", 0);
            add_text(out, "\n\n", 0);
            break;
        case CHAT_AUTO:
        case CHAT_JINJA:
            break;
        }
    }
    return 0;
}

int chat_has_own_bos(ChatTemplate tpl) {
    return tpl == CHAT_LLAMA3 || tpl == CHAT_CHATML || tpl == CHAT_JINJA;
}

void chat_render_free(ChatRender *r) {
    free(r->text);
    free(r->spans);
    memset(r, 0, sizeof *r);
}

/* Where the text run starting at span i stands in the whole rendering (see
 * tok_encode_part): at its start, after a special token (this rendering's span, or for
 * a tail of a rendering whose first span is not at offset 0, a special token string
 * ending right there), or in the middle of text. */
static int run_position(const Tokenizer *tok, const ChatRender *r, int i) {
    const ChatSpan *s = &r->spans[i];
    if (s->off == 0) return TOK_STARTS_INPUT;
    if (i > 0) return r->spans[i - 1].special ? TOK_AFTER_ADDED : TOK_CONTINUES;
    for (int id = 0; id < tok_vocab_size(tok); id++) {
        if (!tok_is_special(tok, id)) continue;
        const char *p = tok_id_to_piece(tok, id);
        size_t n = p ? strlen(p) : 0;
        if (n && n <= s->off && !memcmp(r->text + s->off - n, p, n)) return TOK_AFTER_ADDED;
    }
    return TOK_CONTINUES;
}

int chat_tokenize(Tokenizer *tok, const ChatRender *r, IntVec *ids, IntVec *mask, Error *e) {
    for (int i = 0; i < r->n_spans;) {
        const ChatSpan *s = &r->spans[i];
        if (s->special) {
            char name[64];
            if (s->len >= sizeof name) return err_set(e, EX_SOFTWARE, "chat_tokenize: special span too long");
            memcpy(name, r->text + s->off, s->len);
            name[s->len] = 0;
            int id = tok_piece_to_id(tok, name);
            if (id < 0)
                return err_set(e, EX_DATAERR,
                               "%s: the chat template needs token \"%s\", which this tokenizer lacks "
                               "(wrong --template?)",
                               tok_path(tok), name);
            intvec_push(ids, id);
            if (mask) intvec_push(mask, s->train);
            i++;
            continue;
        }
        /* a maximal run of text spans with the same train flag, tokenized together */
        int j = i + 1;
        while (j < r->n_spans && !r->spans[j].special && r->spans[j].train == s->train) j++;
        size_t end = r->spans[j - 1].off + r->spans[j - 1].len;
        int before = ids->n;
        tok_encode_part(tok, r->text + s->off, end - s->off, 0, run_position(tok, r, i), ids);
        if (mask)
            for (int k = before; k < ids->n; k++) intvec_push(mask, s->train);
        i = j;
    }
    return 0;
}
