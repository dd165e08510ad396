/* fuzz_chat.c — chat templates: recognising a Jinja chat_template source
 * (chat_detect, chat_default_system) and rendering and tokenizing arbitrary
 * conversations with every template.  The input is split at NUL bytes into
 * role, content, role, content, ... */
#include "formats/chat.h"
#include "fuzz.h"

static Tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Error e;
    if (!tok && tok_load(&tok, "tests/oracle/tokenizers/smol.json", &e)) {
        fprintf(stderr, "fuzz_chat: %s (run from the repository root)\n", e.msg);
        abort();
    }
    char *s = fuzz_cstr(data, size);
    ChatTemplate tpl;
    chat_detect(s, &tpl, &e);
    free(chat_default_system(s));
    /* messages from the NUL-separated parts */
    ChatMessage msgs[16];
    const char *parts[32];
    int np = 0;
    for (size_t i = 0; i <= size && np < 32;) {
        parts[np++] = s + i;
        i += strlen(s + i) + 1;
    }
    int n = np / 2;
    for (int i = 0; i < n; i++) msgs[i] = (ChatMessage){parts[2 * i], parts[2 * i + 1]};
    for (int k = CHAT_PLAIN; k <= CHAT_LLAMA3; k++) {
        for (int gen = 0; gen < 2; gen++) {
            ChatRender r = {0};
            if (chat_render((ChatTemplate)k, msgs, n, gen, &r, &e) == 0) {
                IntVec ids = {0}, mask = {0};
                chat_tokenize(tok, &r, &ids, &mask, &e);
                intvec_free(&ids);
                intvec_free(&mask);
            }
            chat_render_free(&r);
        }
    }
    free(s);
    return 0;
}
