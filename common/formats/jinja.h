/* jinja.h — a Jinja2 subset interpreter for the chat templates models ship in
 * tokenizer_config.json ("chat_template").
 *
 * Renders the way transformers' apply_chat_template does: jinja2's
 * ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the loopcontrols
 * extension, and the globals transformers adds (raise_exception, strftime_now,
 * namespace, dict; a tojson filter that is json.dumps(ensure_ascii=False)).  Python semantics where
 * templates see them: str() of values, code-point string indexing and slicing, the
 * str methods strip/split/startswith/..., truthiness, Undefined (prints as "",
 * attribute access on it is an error).
 *
 * Supported: {{ }}, {% if/elif/else %}, {% for x in xs [if c] %} with loop.* and
 * {% else %}, {% set %} (names, tuple targets, ns.attr, {% set x %}..{% endset %}),
 * {% macro %} and calls, {% break/continue %}, {% filter f %}, {% generation %}
 * (rendered as its body), {# #}, whitespace control (-/+), the filters, tests and
 * methods listed in jinja_builtins.c.  Not supported (a clear error naming the
 * construct): include, import, extends, block, call, raw, with.  strftime_now formats the
 * local time, or SOURCE_DATE_EPOCH when set (renderings that print the date are only
 * reproducible with it).  Also kept from jinja2/markupsafe: Markup escaping on
 * `|safe + str`, and generators from map/select/reject.
 *
 * Provenance: every output byte carries a tag — 0 for text the template wrote itself
 * (literals, bos_token), otherwise the tag of the data string it came from (see
 * jinja_render).  chat.c uses it so that user text can never become a control token
 * and to find the assistant turns that train.
 *
 * Limits (hostile templates): nesting depth JINJA_MAX_DEPTH, output size
 * JINJA_MAX_OUTPUT, evaluation steps JINJA_MAX_STEPS, memory JINJA_MAX_MEMORY.
 * Errors are EX_DATAERR with the template line ("chat_template line 3: unknown filter
 * 'frobnicate'"; "chat_template raised: Conversation roles must alternate ..."). */
#ifndef CHERRY_JINJA_H
#define CHERRY_JINJA_H

#include <jansson.h>
#include <stddef.h>

#include "base/err.h"

#define JINJA_MAX_DEPTH 200
#define JINJA_MAX_OUTPUT (16u << 20)
#define JINJA_MAX_STEPS 5000000L
#define JINJA_MAX_MEMORY (256u << 20)

typedef struct JinjaTemplate JinjaTemplate;

/* Parses template SRC (len bytes, UTF-8).  EX_DATAERR with the line and the
 * offending construct on a syntax error or an unsupported construct. */
int jinja_parse(const char *src, size_t len, JinjaTemplate **out, Error *e);
void jinja_free(JinjaTemplate *t);

typedef struct JinjaOutput {
    char *text;         /* NUL-terminated (owned) */
    unsigned char *tag; /* [len] provenance of each byte (owned) */
    size_t len;
} JinjaOutput;

/* Renders T with the variables of the JSON objects TRUSTED (strings tag 0: bos_token,
 * add_generation_prompt, ...) and DATA (tagged strings).  In DATA, the strings inside
 * data["messages"][k] get tag 1 + (k % 250) (its "role" excepted), all other strings
 * tag 255.  Either
 * object may be NULL; DATA's keys win.  *out is overwritten; free with
 * jinja_output_free.  EX_DATAERR on a runtime error (raise_exception, undefined
 * operations, limits). */
int jinja_render(const JinjaTemplate *t, const json_t *trusted, const json_t *data, JinjaOutput *out, Error *e);
void jinja_output_free(JinjaOutput *o);

#endif
