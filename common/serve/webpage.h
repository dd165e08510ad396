/* webpage.h — the chat page of serve (GET / and /chat): plain HTML and JavaScript,
 * no build step.  It chats through POST /v1/chat/completions (n answers per turn),
 * regenerates a turn, sends thumbs up/down per answer and a ranking of a turn's
 * answers to POST /v1/feedback (with the bearer token typed into it), and marks
 * which answer the conversation continues from.  Not for: anything server-side. */
#ifndef CHERRY_WEBPAGE_H
#define CHERRY_WEBPAGE_H

extern const char webpage_html[];

#endif
