/* coh.h — Chain of Hindsight (coh-format): preference pairs (man5 cherry-pairs)
 * reduced to three texts, and the Chain-of-Hindsight layout built from them.
 *
 * A pair's prompt and answers may be strings or message lists; coh_pair_texts renders
 * them to plain text the way coh-format needs (the trainer's chat templates are for
 * data.h, not here).  Chain of Hindsight: Liu, Sferrazza, Abbeel 2023, "Chain of
 * Hindsight Aligns Language Models with Feedback" (arXiv:2302.02676): a sequence
 * shows the prompt, then answers each introduced by a feedback phrase ("A helpful
 * answer:" / "An unhelpful answer:"); the loss is taken on the answers only, so the
 * model learns to produce the answer the phrase asks for.
 * Not for: tokenization or batching (data.h, prefbatch.h). */
#ifndef CHERRY_COH_H
#define CHERRY_COH_H

#include <jansson.h>

#include "base/err.h"
#include "base/util.h"

typedef struct PairRender {
    const char *user_prefix;      /* before each user turn, e.g. "User: " */
    const char *assistant_prefix; /* before earlier assistant turns, e.g. "Assistant: " */
} PairRender;

typedef struct PairText {
    char *prompt; /* rendered: user_prefix + prompt, or the rendered conversation */
    char *chosen; /* answer texts */
    char *rejected;
} PairText;

/* Reads {"prompt"?, "chosen", "rejected"} from REC.  A string prompt gets user_prefix
 * unless it is an hh-rlhf transcript (starts with "\n\nHuman:"); one leading space
 * of each answer is dropped (coh_segments adds it back).  Answers: a string, or a message
 * list whose last message is the assistant's answer (the messages before it, shared
 * by both, are the prompt when "prompt" is absent).  Without "prompt" and with string
 * answers, the hh-rlhf implicit prompt is split off (cherry-pairs(5)).  Message-list
 * prompts render one turn per line: user turns after user_prefix, assistant turns
 * after assistant_prefix, system text as is.  WHERE labels errors. */
int coh_pair_texts(const json_t *rec, const PairRender *r, PairText *out, const char *where, Error *e);
void coh_pair_text_free(PairText *t);

/* ---- Chain of Hindsight ---- */
typedef struct CohTemplate {
    int n;
    char **positive; /* feedback phrase before the preferred answer */
    char **negative; /* ... before the dispreferred one */
} CohTemplate;

/* "helpful" ("A helpful answer:" / "An unhelpful answer:"), "good-bad" ("A good
 * answer:" / "A bad answer:"), or a FILE holding a JSON list of phrase pairs
 * [["positive", "negative"], ...] (one is drawn per example). */
int coh_template_load(CohTemplate *t, const char *name_or_path, Error *e);
void coh_template_free(CohTemplate *t);

/* Builds {"segments": [...]} for one example:
 *   {prompt + " " + phrase_1, train: false}, {" " + answer_1 + eos, train: true},
 *   {sep + phrase_2, train: false},          {" " + answer_2 + eos, train: true}
 * where (phrase_1, answer_1) is (positive, chosen) unless NEGATIVE_FIRST, and sep is
 * " " unless eos ends in white space.  The space before an answer belongs to the
 * answer, as it does in BPE vocabularies (" Paris" is one token). */
json_t *coh_segments(const PairText *p, const char *positive, const char *negative, int negative_first,
                     const char *eos);

/* The text to give the model when sampling: prompt + " " + positive phrase, with
 * "{prompt}" standing for the rendered prompt (user_prefix + prompt). */
char *coh_inference_prefix(const char *user_prefix, const char *positive);

#endif
