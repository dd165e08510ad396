/* chat.h — chat templates: turning a list of {role, content} messages into text and
 * token ids, with a train flag on assistant turns.
 *
 * Four families, written out in C rather than by evaluating Jinja:
 *   plain   contents joined by "\n\n" (no roles); generation prompt "".
 *   hh      Anthropic hh-rlhf: "\n\nHuman: {user}\n\nAssistant: {assistant}"; a system
 *           message is emitted bare before the first turn; generation prompt
 *           "\n\nAssistant:" (the reply then starts with " ", as in hh-rlhf data).
 *   chatml  "<|im_start|>{role}\n{content}<|im_end|>\n"; generation prompt
 *           "<|im_start|>assistant\n" (SmolLM2-Instruct, Qwen).
 *   llama3  "<|begin_of_text|>" then "<|start_header_id|>{role}<|end_header_id|>\n\n
 *           {content|trim}<|eot_id|>"; generation prompt
 *           "<|start_header_id|>assistant<|end_header_id|>\n\n" (Meta Llama-3 template).
 *   jinja   the model's own chat_template from tokenizer_config.json, run by the Jinja
 *           interpreter (jinja.h) exactly as transformers' apply_chat_template renders
 *           it (bos_token/eos_token from the tokenizer, tools=None).
 * auto takes a built-in family when the chat_template is recognised (chat_detect) AND
 * renders probe conversations identically to it (so Llama-3.1's "Cutting Knowledge
 * Date" system block or Qwen2.5's default system prompt are never lost); otherwise the
 * model's template itself (jinja).  A template the interpreter cannot run is
 * EX_DATAERR naming the construct; no chat_template at all is EX_USAGE.
 *
 * What trains: an assistant message's content and the token(s) closing it
 * (<|im_end|>, <|eot_id|>) — TRL's assistant_only_loss.  Everything else is prompt.
 * For jinja: the bytes from the first to the last one that came from the assistant
 * message's data (its content, tool calls), plus a special token that follows
 * (after optional spaces), found through the interpreter's provenance tags.
 *
 * Tokenization: a rendering is a list of spans.  Spans marked `special` hold exactly
 * one special-token string and become its id directly; maximal runs of the other
 * spans with the same train flag are concatenated and tokenized together with
 * parse_special = 0.  So user text can never inject "<|im_start|>", and the
 * prompt/completion boundary is exact (each side tokenized separately, see data.h).
 * With jinja, special-token strings are recognised only in text the template wrote
 * itself (provenance tag 0), never in message data. */
#ifndef CHERRY_CHAT_H
#define CHERRY_CHAT_H

#include <jansson.h>
#include <stddef.h>

#include "base/err.h"
#include "tokenizer.h"

typedef enum ChatTemplate { CHAT_AUTO = 0, CHAT_PLAIN, CHAT_HH, CHAT_CHATML, CHAT_LLAMA3, CHAT_JINJA } ChatTemplate;

/* "plain" | "hh" | "chatml" | "llama3" | "jinja" | "auto" -> *out; EX_USAGE otherwise. */
int chat_template_parse(const char *name, ChatTemplate *out, Error *e);
const char *chat_template_name(ChatTemplate tpl);

/* Recognises a Jinja chat_template source as one of the built-in families by its
 * distinctive markers; any other source is CHAT_JINJA.  NULL src = EX_USAGE ("no
 * chat_template in tokenizer_config.json; pass --template ..."). */
int chat_detect(const char *jinja_src, ChatTemplate *out, Error *e);
/* tpl, or for CHAT_AUTO what auto means above (detect, then check by rendering).
 * CHAT_JINJA (asked for or chosen) needs a chat_template the interpreter can parse:
 * EX_USAGE when there is none, EX_DATAERR naming the unsupported construct. */
int chat_resolve(ChatTemplate tpl, const Tokenizer *tok, ChatTemplate *out, Error *e);

/* The system message a chatml template inserts when a conversation does not start
 * with one, read out of its Jinja source (SmolLM2-Instruct: "You are a helpful AI
 * assistant named SmolLM, trained by Hugging Face"; Qwen2: "You are a helpful
 * assistant.").  NULL when the template has none.  Caller frees.  The data layer
 * applies it when the template was chosen by auto, so renderings match
 * apply_chat_template. */
char *chat_default_system(const char *jinja_src);

typedef struct ChatMessage {
    const char *role;    /* "system" | "user" | "assistant" (others: chatml/llama3 print them) */
    const char *content; /* UTF-8, NUL-terminated */
} ChatMessage;

typedef struct ChatSpan {
    size_t off, len;       /* bytes of ChatRender.text */
    unsigned char train;   /* 1 = bears loss (assistant content and its closing token) */
    unsigned char special; /* 1 = exactly one special-token string */
} ChatSpan;

typedef struct ChatRender {
    char *text; /* whole rendering, NUL-terminated (owned) */
    size_t len;
    ChatSpan *spans; /* in order, covering text exactly (owned) */
    int n_spans, cap;
} ChatRender;

/* Renders messages (roles validated: hh accepts system/user/assistant only, plain
 * any).  add_generation_prompt appends the assistant header.  *out must be zeroed
 * or previously freed; free with chat_render_free.  EX_DATAERR on a bad role,
 * naming it. */
int chat_render(ChatTemplate tpl, const ChatMessage *msgs, int n, int add_generation_prompt, ChatRender *out, Error *e);
void chat_render_free(ChatRender *r);

/* chat_render for any template: CHAT_JINJA renders tok's chat_template (parsed once
 * and kept with tok), the built-ins are chat_render.  EX_DATAERR when the template
 * raises (raise_exception("Conversation roles must alternate ...")) or fails. */
int chat_render_tok(ChatTemplate tpl, Tokenizer *tok, const ChatMessage *msgs, int n, int add_generation_prompt,
                    ChatRender *out, Error *e);
/* The model's template over a JSON messages array (messages may carry tool_calls,
 * tool_call_id, name...) with tools (a JSON array, or NULL for None). */
int chat_render_json(Tokenizer *tok, const json_t *messages, const json_t *tools, int add_generation_prompt,
                     ChatRender *out, Error *e);
/* 1 when renderings of tpl carry their own BOS (or deliberately none), so callers
 * must not add the post-processor's. */
int chat_has_own_bos(ChatTemplate tpl);

/* Tokenizes a rendering as described above: APPENDS ids (and, when mask is not
 * NULL, one byte per id: 1 where the span trains) to ids/mask.  A special span
 * whose string is not a single token of tok is EX_DATAERR (wrong template for this
 * tokenizer). mask->n always equals ids->n on return when given. */
int chat_tokenize(Tokenizer *tok, const ChatRender *r, IntVec *ids, IntVec *mask, Error *e);

#endif
