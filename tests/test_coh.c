/* test_coh.c — coh.c: reading pairs in every accepted form (strings,
 * message lists, shared-conversation prompts, hh-rlhf transcripts) and the
 * Chain-of-Hindsight layout: what is trained, what is not, and that the segments
 * concatenate to exactly the sequence the paper describes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data/coh.h"

static const PairRender render = {"User: ", "Assistant: "};

static int texts(const char *json, PairText *pt, Error *e) {
    json_t *rec = json_loads(json, 0, NULL);
    if (!rec) {
        printf("bad test JSON: %s\n", json);
        exit(1);
    }
    int rc = coh_pair_texts(rec, &render, pt, "t:1", e);
    json_decref(rec);
    return rc;
}

static void expect_texts(const char *json, const char *prompt, const char *chosen, const char *rejected) {
    PairText pt;
    Error e = {0};
    int rc = texts(json, &pt, &e);
    CHECK(rc == 0, "%s: unexpected error %s", json, e.msg);
    if (rc) return;
    CHECK(strcmp(pt.prompt, prompt) == 0, "prompt: expected [%s], got [%s]", prompt, pt.prompt);
    CHECK(strcmp(pt.chosen, chosen) == 0, "chosen: expected [%s], got [%s]", chosen, pt.chosen);
    CHECK(strcmp(pt.rejected, rejected) == 0, "rejected: expected [%s], got [%s]", rejected, pt.rejected);
    coh_pair_text_free(&pt);
}

static void expect_error(const char *json, const char *needle) {
    PairText pt;
    Error e = {0};
    int rc = texts(json, &pt, &e);
    CHECK(rc == EX_DATAERR && strstr(e.msg, needle) && strstr(e.msg, "t:1"),
          "%s: expected exit 65 with '%s', got %d '%s'", json, needle, rc, e.msg);
    if (rc == 0) coh_pair_text_free(&pt);
}

static void test_reading(void) {
    expect_texts("{\"prompt\":\"Q?\",\"chosen\":\"yes\",\"rejected\":\"no\"}", "User: Q?", "yes", "no");
    expect_texts("{\"prompt\":[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"Hi\"},"
                 "{\"role\":\"assistant\",\"content\":\"Hello\"},{\"role\":\"user\",\"content\":\"Bye\"}],"
                 "\"chosen\":[{\"role\":\"assistant\",\"content\":\"Ciao\"}],"
                 "\"rejected\":[{\"role\":\"assistant\",\"content\":\"k\"}]}",
                 "S\nUser: Hi\nAssistant: Hello\nUser: Bye", "Ciao", "k");
    expect_texts("{\"chosen\":[{\"role\":\"user\",\"content\":\"2+2\"},{\"role\":\"assistant\",\"content\":\"4\"}],"
                 "\"rejected\":[{\"role\":\"user\",\"content\":\"2+2\"},{\"role\":\"assistant\",\"content\":\"5\"}]}",
                 "User: 2+2", "4", "5");
    expect_texts(
        "{\"chosen\":\"\\n\\nHuman: q\\n\\nAssistant: Yes\",\"rejected\":\"\\n\\nHuman: q\\n\\nAssistant: Yeah\"}",
        "\n\nHuman: q\n\nAssistant:", "Yes", "Yeah");
    expect_texts("{\"prompt\":\"\\n\\nHuman: q\\n\\nAssistant:\",\"chosen\":\" a\",\"rejected\":\" b\"}",
                 "\n\nHuman: q\n\nAssistant:", "a", "b");
    expect_error("{\"prompt\":\"x\",\"chosen\":\"y\"}", "missing field \"rejected\"");
    expect_error("{\"prompt\":\"x\",\"chosen\":3,\"rejected\":\"z\"}", "\"chosen\" must be");
    expect_error("{\"prompt\":\"x\",\"chosen\":[{\"role\":\"user\",\"content\":\"y\"}],\"rejected\":\"z\"}",
                 "ending with an assistant message");
    expect_error("{\"prompt\":5,\"chosen\":\"y\",\"rejected\":\"z\"}", "\"prompt\" must be");
    expect_error("{\"prompt\":[{\"role\":\"robot\",\"content\":\"x\"}],\"chosen\":\"y\",\"rejected\":\"z\"}",
                 "unknown role");
    expect_error("{\"chosen\":\"a\",\"rejected\":\"b\"}", "Assistant:");
    expect_error("{\"chosen\":[{\"role\":\"user\",\"content\":\"p\"},{\"role\":\"assistant\",\"content\":\"a\"}],"
                 "\"rejected\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"b\"}]}",
                 "do not share");
}

/* Concatenation of the texts, and the train flags as a string like "0101". */
static void flatten(const json_t *ex, char *text, size_t cap, char *flags) {
    const json_t *segs = json_object_get(ex, "segments");
    text[0] = 0;
    for (size_t k = 0; k < json_array_size(segs); k++) {
        const json_t *s = json_array_get(segs, k);
        strncat(text, json_string_value(json_object_get(s, "text")), cap - strlen(text) - 1);
        flags[k] = json_is_true(json_object_get(s, "train")) ? '1' : '0';
    }
    flags[json_array_size(segs)] = 0;
}

static void test_layout(void) {
    PairText pt = {"User: Q?", "Paris", "Lyon"};
    char text[512], flags[16];
    json_t *ex = coh_segments(&pt, "A helpful answer:", "An unhelpful answer:", 0, "\n");
    flatten(ex, text, sizeof text, flags);
    CHECK(strcmp(text, "User: Q? A helpful answer: Paris\nAn unhelpful answer: Lyon\n") == 0, "pn text: got [%s]",
          text);
    CHECK(strcmp(flags, "0101") == 0, "pn flags: expected 0101, got %s", flags);
    /* The trained segments hold exactly the answers and their end markers. */
    const json_t *segs = json_object_get(ex, "segments");
    CHECK(strcmp(json_string_value(json_object_get(json_array_get(segs, 1), "text")), " Paris\n") == 0,
          "first trained segment should be the chosen answer");
    json_decref(ex);

    ex = coh_segments(&pt, "A good answer:", "A bad answer:", 1, "</s>");
    flatten(ex, text, sizeof text, flags);
    CHECK(strcmp(text, "User: Q? A bad answer: Lyon</s> A good answer: Paris</s>") == 0, "np text: got [%s]", text);
    CHECK(strcmp(flags, "0101") == 0, "np flags: expected 0101, got %s", flags);
    json_decref(ex);

    ex = coh_segments(&pt, "+", "-", 0, "");
    flatten(ex, text, sizeof text, flags);
    CHECK(strcmp(text, "User: Q? + Paris - Lyon") == 0, "no eos: got [%s]", text);
    json_decref(ex);

    char *pre = coh_inference_prefix("User: ", "A helpful answer:");
    CHECK(strcmp(pre, "User: {prompt} A helpful answer:") == 0, "inference prefix: got [%s]", pre);
    free(pre);
}

static void test_templates(void) {
    CohTemplate t;
    Error e = {0};
    CHECK(coh_template_load(&t, "helpful", &e) == 0 && t.n == 1 && strcmp(t.positive[0], "A helpful answer:") == 0 &&
              strcmp(t.negative[0], "An unhelpful answer:") == 0,
          "helpful template");
    coh_template_free(&t);
    CHECK(coh_template_load(&t, "tests/data/pairs/coh_templates.json", &e) == 0 && t.n == 2 &&
              strcmp(t.negative[1], "Here is an unhelpful reply:") == 0,
          "template file: %s", e.msg);
    coh_template_free(&t);
    CHECK(coh_template_load(&t, "/nonexistent/template.json", &e) == EX_NOINPUT, "missing template file");
}

int main(void) {
    test_reading();
    test_layout();
    test_templates();
    return check_summary("test_coh");
}
