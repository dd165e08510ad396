/* chat_impl.h — between chat.c (the built-in layouts, template choice) and
 * chat_jinja.c (rendering the model's own chat_template).  Private to formats/. */
#ifndef CHERRY_CHAT_IMPL_H
#define CHERRY_CHAT_IMPL_H

#include "chat.h"

/* Parses tok's chat_template once (kept with tok); 0, or the parse error. */
int chat_jinja_check(Tokenizer *tok, Error *e);
/* 1 when the built-in family renders a few probe conversations (system or not, one
 * and two turns, generation prompt on and off) exactly as the model's template does,
 * the chatml default system message included as the data layer adds it. */
int chat_jinja_matches(Tokenizer *tok, ChatTemplate fam);

#endif
