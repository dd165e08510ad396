/* task.h — the bundled default task and its gold rule.
 *
 * "Repeat, politely": a prompt asks the model to repeat a few words,
 *     "Repeat: red fox sky\nAnswer:"
 * and the one fully good completion is
 *     " red fox sky. Glad to help!"
 * The answer is verifiable (the words, in order) and carries a property annotators
 * prefer (the polite closing).  The SFT data mixes good, curt and wrong answers so
 * the SFT model does all three; alignment should move it to the good one.
 * The same rule is used by `annotate` (simulated annotators, with noise) and by
 * `eval` (the gold score), so they cannot drift apart.
 * Not for: anything that needs a model. */
#ifndef CHERRY_TASK_H
#define CHERRY_TASK_H

#include <stddef.h>

#include "base/util.h"

#define TASK_CLOSING "Glad to help!"

/* Which of the SFT data's behaviours to write. */
typedef enum { TASK_GOOD, TASK_CURT, TASK_WRONG_POLITE, TASK_WRONG_CURT } TaskStyle;

/* Writes a random prompt and its words (the correct answer) into the buffers.
 * The word count is 2..max_words.  Different `split` values (0 = train, 1 = eval)
 * draw from disjoint halves of the word-combination space, so held-out prompts are
 * never seen in training. */
void task_prompt(Rng *r, int split, int max_words, char *prompt, size_t psz, char *words, size_t wsz);

/* Writes a completion of the given style for the words. */
void task_completion(Rng *r, TaskStyle style, const char *words, char *out, size_t osz);

/* Extracts the words from a prompt; returns 0, or -1 when it is not a task prompt. */
int task_prompt_words(const char *prompt, char *words, size_t wsz);

/* The graded judgement of a completion: 2 for the right words, +1 for the polite
 * closing (0..3).  Returns -1 when the prompt is not a task prompt. */
int task_utility(const char *prompt, const char *completion);

/* The gold score: 1 when the completion is exactly the good answer (right words and
 * the polite closing, nothing else but trailing whitespace/EOS), else 0. */
double task_gold(const char *prompt, const char *completion);

#endif
