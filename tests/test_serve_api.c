/* test_serve_api.c — serve's parsers and log code without a network (also run under
 * ASan/UBSan by make check): hostile request bodies (wrong types, out-of-range
 * numbers, too many or empty stop strings, NUL bytes, nesting), feedback checked
 * against the id index (unknown ids, partial or repeated rankings, picks across
 * prompts), the log writer (one line per record, a torn tail terminated on reopen) and
 * reader (torn lines skipped and counted, a broken line in the middle an error with
 * FILE:LINE). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "check.h"
#include "serve/api.h"
#include "serve/idindex.h"
#include "serve/ilog.h"

static ApiLimits lim = {16, 512, 128};

static int parse(const char *body, int chat, ApiRequest *r, Error *e) {
    json_error_t je;
    json_t *b = json_loads(body, JSON_ALLOW_NUL, &je);
    if (!b) {
        fprintf(stderr, "FAIL: test body is not JSON: %s\n", body);
        failures++;
        return -1;
    }
    int rc = api_parse_request(b, chat, &lim, r, e);
    json_decref(b); /* r's borrowed pointers are not used after this in the error cases */
    return rc;
}

static void request_errors(void) {
    static const struct {
        const char *body, *needle;
        int chat;
    } bad[] = {
        {"[]", "JSON object", 1},
        {"{}", "\"messages\"", 1},
        {"{\"messages\":[]}", "\"messages\"", 1},
        {"{\"messages\":[1]}", "messages[0]", 1},
        {"{\"messages\":[{\"role\":\"user\"}]}", "messages[0]", 1},
        {"{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", "role", 1},
        {"{\"prompt\":5}", "\"prompt\"", 0},
        {"{\"prompt\":\"\"}", "\"prompt\"", 0},
        {"{\"prompt\":[\"a\",\"b\"]}", "one prompt", 0},
        {"{\"prompt\":\"a\\u0000b\"}", "NUL", 0},
        {"{\"prompt\":\"a\",\"n\":0}", "\"n\"", 0},
        {"{\"prompt\":\"a\",\"n\":17}", "\"n\"", 0},
        {"{\"prompt\":\"a\",\"n\":1.5}", "\"n\"", 0},
        {"{\"prompt\":\"a\",\"max_tokens\":513}", "max_tokens", 0},
        {"{\"prompt\":\"a\",\"temperature\":-1}", "temperature", 0},
        {"{\"prompt\":\"a\",\"temperature\":\"hot\"}", "temperature", 0},
        {"{\"prompt\":\"a\",\"top_p\":0}", "top_p", 0},
        {"{\"prompt\":\"a\",\"seed\":\"x\"}", "seed", 0},
        {"{\"prompt\":\"a\",\"stream\":1}", "stream", 0},
        {"{\"prompt\":\"a\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "at most 4", 0},
        {"{\"prompt\":\"a\",\"stop\":[\"\"]}", "1..64", 0},
        {"{\"prompt\":\"a\",\"stop\":[1]}", "\"stop\"", 0},
        {"{\"prompt\":\"a\",\"stop\":{}}", "\"stop\"", 0},
        {"{\"prompt\":\"a\",\"model\":3}", "\"model\"", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ApiRequest r;
        Error e = {0};
        int rc = parse(bad[i].body, bad[i].chat, &r, &e);
        CHECK(rc == EX_DATAERR, "%s: expected EX_DATAERR, got %d", bad[i].body, rc);
        CHECK(strstr(e.msg, bad[i].needle) != NULL, "%s: message '%s' lacks '%s'", bad[i].body, e.msg, bad[i].needle);
    }
    /* a good one, with defaults and extra fields ignored */
    json_t *b = json_loads("{\"prompt\":[\"hi\"],\"stop\":\"\\n\",\"seed\":7,\"user\":\"u\",\"logprobs\":null,"
                           "\"max_completion_tokens\":9}",
                           0, NULL);
    ApiRequest r;
    Error e = {0};
    CHECK(api_parse_request(b, 0, &lim, &r, &e) == 0, "good request: %s", e.msg);
    CHECK(r.n == 1 && r.max_tokens == 9 && r.has_seed && r.seed == 7 && r.n_stop == 1 && !strcmp(r.stop[0], "\n") &&
              r.temperature == 1 && json_is_string(r.prompt),
          "parsed values");
    GenJob *j = api_job(&r, 99);
    CHECK(j->seed == 7 && j->max_tokens == 9 && j->n_stop == 1, "job from request");
    gen_job_unref(j);
    json_decref(b);
}

static json_t *interaction(const char *id, const char *prompt, int n) {
    json_t *ch = json_array();
    for (int i = 0; i < n; i++) {
        char cid[64];
        snprintf(cid, sizeof cid, "%s-%d", id, i);
        json_array_append_new(ch, json_pack("{s:s, s:i, s:s}", "id", cid, "index", i, "text", "t"));
    }
    return json_pack("{s:s, s:s, s:s, s:o}", "object", "interaction", "id", id, "prompt", prompt, "choices", ch);
}

static void feedback_checks(void) {
    IdIndex ix;
    idindex_init(&ix);
    for (int k = 0; k < 3000; k++) { /* enough to grow the table */
        char id[32];
        snprintf(id, sizeof id, "r%d", k);
        json_t *it = interaction(id, k == 1 ? "other prompt" : "p", k == 0 ? 3 : 2);
        idindex_add_interaction(&ix, it);
        json_decref(it);
    }
    static const struct {
        const char *body;
        int code;
        const char *needle;
    } cases[] = {
        {"{\"type\":\"thumbs\",\"completion_id\":\"r0-2\",\"value\":\"up\",\"comment\":\"ok\"}", 0, ""},
        {"{\"type\":\"thumbs\",\"completion_id\":\"r2999-1\",\"value\":\"down\"}", 0, ""},
        {"{\"type\":\"ranking\",\"response_id\":\"r0\",\"ranking\":[\"r0-2\",\"r0-0\",\"r0-1\"]}", 0, ""},
        {"{\"type\":\"pick\",\"chosen\":\"r0-1\",\"rejected\":\"r5-0\"}", 0, ""},
        {"[]", EX_DATAERR, "JSON object"},
        {"{\"completion_id\":\"r0-0\"}", EX_DATAERR, "\"type\""},
        {"{\"type\":\"stars\"}", EX_DATAERR, "\"type\""},
        {"{\"type\":\"thumbs\",\"completion_id\":\"r0-9\",\"value\":\"up\"}", EX_NOINPUT, "unknown completion id"},
        {"{\"type\":\"thumbs\",\"completion_id\":\"r0\",\"value\":\"up\"}", EX_NOINPUT, "unknown completion id"},
        {"{\"type\":\"thumbs\",\"completion_id\":5,\"value\":\"up\"}", EX_DATAERR, "completion_id"},
        {"{\"type\":\"thumbs\",\"completion_id\":\"r0-0\",\"value\":1}", EX_DATAERR, "\"value\""},
        {"{\"type\":\"thumbs\",\"completion_id\":\"r0-0\",\"value\":\"up\",\"user\":7}", EX_DATAERR, "\"user\""},
        {"{\"type\":\"ranking\",\"response_id\":\"r9999\",\"ranking\":[]}", EX_NOINPUT, "unknown response"},
        {"{\"type\":\"ranking\",\"response_id\":\"r0-0\",\"ranking\":[]}", EX_NOINPUT, "unknown response"},
        {"{\"type\":\"ranking\",\"response_id\":\"r0\",\"ranking\":[\"r0-0\",\"r0-1\"]}", EX_DATAERR, "all 3"},
        {"{\"type\":\"ranking\",\"response_id\":\"r0\",\"ranking\":[\"r0-0\",\"r0-0\",\"r0-1\"]}", EX_DATAERR, "twice"},
        {"{\"type\":\"ranking\",\"response_id\":\"r0\",\"ranking\":[\"r0-0\",\"r3-0\",\"r0-1\"]}", EX_DATAERR,
         "not a completion"},
        {"{\"type\":\"ranking\",\"response_id\":\"r0\",\"ranking\":\"r0-0\"}", EX_DATAERR, "\"ranking\""},
        {"{\"type\":\"pick\",\"chosen\":\"r0-1\",\"rejected\":\"r0-1\"}", EX_DATAERR, "same completion"},
        {"{\"type\":\"pick\",\"chosen\":\"r0-1\",\"rejected\":\"r1-0\"}", EX_DATAERR, "different prompts"},
        {"{\"type\":\"pick\",\"chosen\":\"r0-1\"}", EX_DATAERR, "\"rejected\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *b = json_loads(cases[i].body, 0, NULL);
        json_t *rec = NULL;
        Error e = {0};
        int rc = api_feedback_record(b, &ix, "fb-1", 1, "t", &rec, &e);
        CHECK(rc == cases[i].code, "%s: expected %d, got %d (%s)", cases[i].body, cases[i].code, rc, e.msg);
        CHECK(strstr(e.msg, cases[i].needle) != NULL, "%s: message '%s' lacks '%s'", cases[i].body, e.msg,
              cases[i].needle);
        CHECK((rc == 0) == (rec != NULL), "%s: record iff accepted", cases[i].body);
        if (rec && i == 0)
            CHECK(!strcmp(json_string_value(json_object_get(rec, "response_id")), "r0") &&
                      !strcmp(json_string_value(json_object_get(rec, "comment")), "ok"),
                  "thumbs record fields");
        json_decref(rec);
        json_decref(b);
    }
    idindex_free(&ix);
}

typedef struct Seen {
    int n;
    char ids[8][32];
} Seen;
static int collect(void *ctx, json_t *rec, long line, Error *e) {
    Seen *s = ctx;
    if (s->n < 8) snprintf(s->ids[s->n++], 32, "%s", json_string_value(json_object_get(rec, "id")));
    return 0;
}

static void log_checks(void) {
    char path[] = "/tmp/test_serve_api.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    Ilog l;
    Error e = {0};
    CHECK(ilog_open(&l, path, &e) == 0, "open: %s", e.msg);
    json_t *a = interaction("a", "p\n\"q\"", 2), *b = interaction("b", "p", 1);
    CHECK(ilog_append(&l, a, &e) == 0 && ilog_append(&l, b, &e) == 0 && l.records == 2, "append");
    ilog_close(&l);
    /* a crash mid-write: a torn tail; reopening terminates it, the next record is whole */
    FILE *fp = fopen(path, "a");
    fputs("{\"object\":\"interaction\",\"id\":\"tor", fp);
    fclose(fp);
    CHECK(ilog_open(&l, path, &e) == 0, "reopen: %s", e.msg);
    json_t *c = interaction("c", "p", 1);
    CHECK(ilog_append(&l, c, &e) == 0, "append after torn");
    ilog_close(&l);
    fp = fopen(path, "a"); /* and a torn last line without newline */
    fputs("{\"object\":\"inter", fp);
    fclose(fp);
    Seen s = {0};
    long torn = -1;
    CHECK(ilog_read(path, collect, &s, &torn, &e) == 0, "read: %s", e.msg);
    CHECK(s.n == 3 && !strcmp(s.ids[0], "a") && !strcmp(s.ids[1], "b") && !strcmp(s.ids[2], "c"), "records read: %d",
          s.n);
    CHECK(torn == 2, "torn lines: %ld", torn);
    /* a broken line in the middle is an error naming FILE:LINE */
    fp = fopen(path, "a");
    fputs("\nnot json at all\n{\"object\":\"x\"}\n", fp);
    fclose(fp);
    s.n = 0;
    CHECK(ilog_read(path, collect, &s, &torn, &e) == EX_DATAERR, "garbage line accepted");
    CHECK(strstr(e.msg, ":6:") != NULL, "error names the line: %s", e.msg);
    CHECK(ilog_read("/nonexistent/x.jsonl", collect, &s, &torn, &e) == EX_NOINPUT, "missing log");
    char id1[48], id2[48];
    ilog_new_id("cmpl", id1, sizeof id1);
    ilog_new_id("cmpl", id2, sizeof id2);
    CHECK(strlen(id1) == 29 && strncmp(id1, "cmpl-", 5) == 0 && strcmp(id1, id2), "ids: %s %s", id1, id2);
    json_decref(a), json_decref(b), json_decref(c);
    unlink(path);
}

int main(void) {
    request_errors();
    feedback_checks();
    log_checks();
    if (!failures) printf("ok: serve request/feedback parsing and logs\n");
    return failures != 0;
}
