/* test_recstream.c — records and their examples in step (common/data/recstream.c), and the
 * reward column rule (prefbatch.c prefbatch_score_column).  Runs under ASan+UBSan too.
 *
 * recstream: a file mixing valid pairs, an invalid JSON line, a record the data layer
 * drops (prompt too long), blank lines and a record with a wrong field type must give
 * exactly the valid records, each with the example of the same line; without
 * --skip-invalid the first bad line is EX_DATAERR naming FILE:LINE; standard input
 * ("-") gives the same as the file; kinds are detected from the first record.
 * prefbatch_score_column: transformers' rightmost-non-pad rule, pad == EOS, no pad id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/data.h"
#include "train/prefbatch.h"
#include "data/recstream.h"
#include "formats/tokenizer.h"
#include "model/model.h"
#include "base/util.h"


static char tmpdir[] = "/tmp/test_recstream.XXXXXX";

static char *write_file(const char *name, const char *text) {
    char *p = path_join(tmpdir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

static const char *MIXED =
    "{\"prompt\": \"Repeat: red fox\\nAnswer:\", \"chosen\": \" red fox.\", \"rejected\": \" fox.\", \"id\": 1}\n"
    "{\"prompt\": \"broken\n"
    "\n"
    "{\"prompt\": \"Repeat: red fox sky blue cat tree green dog sun moon rain\\nAnswer:\", \"chosen\": \" a\", "
    "\"rejected\": \" b\", \"id\": 2}\n"
    "{\"prompt\": \"Repeat: a\\nAnswer:\", \"chosen\": 7, \"rejected\": \" b\", \"id\": 3}\n"
    "{\"prompt\": \"Repeat: blue cat\\nAnswer:\", \"chosen\": \" blue cat. Glad to help!\", \"rejected\": \" cat.\", "
    "\"id\": 4}\n";

/* Reads every record of PATH with skip_invalid; checks ids 1 and 4 come back with
 * their own lines and examples. */
static void read_mixed(Tokenizer *tok, const char *path, const char *label) {
    DataOptions o;
    data_options_default(&o);
    o.skip_invalid = 1;
    o.max_length = 16; /* the long prompt of id 2 cannot fit: dropped */
    o.max_prompt_length = 0;
    RecStream rs;
    Error e = {0};
    int rc = recstream_open(&rs, path, tok, &o, &e);
    CHECK(rc == 0, "%s: open: %s", label, e.msg);
    if (rc) return;
    CHECK(rs.kind == DATA_PREFERENCE, "%s: kind %s, expected preference", label, data_kind_name(rs.kind));
    long want_id[2] = {1, 4}, want_line[2] = {1, 6};
    int got = 0;
    for (;;) {
        json_t *r;
        Example ex;
        PrefExample p;
        memset(&ex, 0, sizeof ex);
        memset(&p, 0, sizeof p);
        rc = recstream_next(&rs, &r, &ex, &p, &e);
        if (rc == DATA_END) break;
        CHECK(rc == 0, "%s: next: %s", label, e.msg);
        if (rc) break;
        if (got < 2) {
            long id = (long)json_integer_value(json_object_get(r, "id"));
            CHECK(id == want_id[got], "%s: record %d has id %ld, expected %ld", label, got, id, want_id[got]);
            CHECK(p.line == want_line[got], "%s: record %d: example of line %ld, expected %ld", label, got, p.line,
                  want_line[got]);
            CHECK(p.n_chosen > 0 && p.n_rejected > 0 && p.n_prompt > 0, "%s: empty example", label);
        }
        got++;
        json_decref(r);
        pref_example_free(&p);
    }
    CHECK(got == 2, "%s: %d records, expected 2", label, got);
    CHECK(rs.dropped == 3, "%s: %ld dropped or skipped, expected 3 (invalid JSON, too long, wrong type)", label,
          rs.dropped);
    recstream_close(&rs);
}

static void test_recstream(Tokenizer *tok) {
    char *mixed = write_file("mixed.jsonl", MIXED);
    read_mixed(tok, mixed, "file");

    /* the same through standard input (spooled to a temporary file) */
    FILE *saved = stdin;
    if (!freopen(mixed, "r", stdin)) {
        CHECK(0, "freopen");
    } else {
        read_mixed(tok, "-", "stdin");
    }
    (void)saved;

    /* without skip_invalid: the first bad line is an error naming FILE:LINE */
    DataOptions o;
    data_options_default(&o);
    RecStream rs;
    Error e = {0};
    int rc = recstream_open(&rs, mixed, tok, &o, &e);
    CHECK(rc == 0, "strict open: %s", e.msg);
    if (!rc) {
        json_t *r;
        Example ex;
        PrefExample p;
        memset(&p, 0, sizeof p);
        rc = recstream_next(&rs, &r, &ex, &p, &e);
        CHECK(rc == 0, "strict: first record: %s", e.msg);
        if (!rc) {
            json_decref(r);
            pref_example_free(&p);
        }
        rc = recstream_next(&rs, &r, &ex, &p, &e);
        CHECK(rc == EX_DATAERR && strstr(e.msg, "mixed.jsonl:2"),
              "strict: expected EX_DATAERR at mixed.jsonl:2, got %d (%s)", rc, e.msg);
        recstream_close(&rs);
    }

    /* prompt-completion records come back as Examples with the record */
    char *pc = write_file("pc.jsonl", "{\"prompt\": \"Repeat: a\\nAnswer:\", \"completion\": \" a.\", \"k\": 1}\n"
                                      "{\"prompt\": \"Repeat: b\\nAnswer:\", \"completion\": \" b.\", \"k\": 2}\n");
    rc = recstream_open(&rs, pc, tok, &o, &e);
    CHECK(rc == 0 && rs.kind == DATA_PROMPT_COMPLETION, "prompt-completion: open %d kind %s (%s)", rc,
          data_kind_name(rs.kind), e.msg);
    if (!rc) {
        for (int k = 1; k <= 3; k++) {
            json_t *r;
            Example ex;
            PrefExample p;
            memset(&ex, 0, sizeof ex);
            rc = recstream_next(&rs, &r, &ex, &p, &e);
            if (k == 3) {
                CHECK(rc == DATA_END, "prompt-completion: expected the end, got %d", rc);
                break;
            }
            CHECK(rc == 0, "prompt-completion record %d: %s", k, e.msg);
            if (rc) break;
            CHECK(json_integer_value(json_object_get(r, "k")) == k, "prompt-completion: record %d out of order", k);
            CHECK(ex.prompt_len > 0 && ex.n > ex.prompt_len, "prompt-completion: example %d has no completion", k);
            json_decref(r);
            example_free(&ex);
        }
        recstream_close(&rs);
    }

    /* an empty input is an empty stream; a record of no known kind is an error */
    char *empty = write_file("empty.jsonl", "\n\n");
    rc = recstream_open(&rs, empty, tok, &o, &e);
    CHECK(rc == 0, "empty: %s", e.msg);
    if (!rc) {
        json_t *r;
        Example ex;
        PrefExample p;
        CHECK(recstream_next(&rs, &r, &ex, &p, &e) == DATA_END, "empty: expected the end");
        recstream_close(&rs);
    }
    char *odd = write_file("odd.jsonl", "{\"question\": \"x\"}\n");
    rc = recstream_open(&rs, odd, tok, &o, &e);
    CHECK(rc == EX_DATAERR && strstr(e.msg, "odd.jsonl:1"),
          "unknown kind: expected EX_DATAERR at odd.jsonl:1, got %d (%s)", rc, e.msg);
    char *none = path_join(tmpdir, "none.jsonl");
    rc = recstream_open(&rs, none, tok, &o, &e);
    CHECK(rc == EX_NOINPUT, "missing file: expected EX_NOINPUT, got %d (%s)", rc, e.msg);
    free(mixed);
    free(pc);
    free(empty);
    free(odd);
    free(none);
}

static void test_score_column(void) {
    /* rows of T = 6: tokens, lengths; pad id 0 (= EOS as in GPT-2 style tokenizers) */
    int tokens[4 * 6] = {
        5, 6, 7, 0, 0, 0, /* ends with EOS 0, then padding: the score is read at 7 (column 2) */
        5, 6, 7, 8, 9, 3, /* full row: column 5 */
        0, 0, 0, 0, 0, 0, /* nothing but pad: column 0 (argmax of zeros) */
        5, 0, 7, 0, 0, 0, /* a pad id inside: the rightmost non-pad is column 2 */
    };
    int lengths[4] = {4, 6, 3, 4};
    Batch b;
    memset(&b, 0, sizeof b);
    b.B = 4;
    b.T = 6;
    b.tokens = tokens;
    b.lengths = lengths;
    int want0[4] = {2, 5, 0, 2};
    for (int r = 0; r < 4; r++)
        CHECK(prefbatch_score_column(&b, r, 0) == want0[r], "row %d, pad 0: column %d, expected %d", r,
              prefbatch_score_column(&b, r, 0), want0[r]);
    /* no pad id: the last real token */
    int want1[4] = {3, 5, 2, 3};
    for (int r = 0; r < 4; r++)
        CHECK(prefbatch_score_column(&b, r, -1) == want1[r], "row %d, no pad: column %d, expected %d", r,
              prefbatch_score_column(&b, r, -1), want1[r]);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    Tokenizer *tok;
    Error e = {0};
    if (model_tokenizer_load(&tok, "data", &e)) {
        printf("FAIL: %s\n", e.msg);
        return 1;
    }
    test_recstream(tok);
    test_score_column();
    tok_free(tok);
    remove_tree(tmpdir);
    return check_summary("test_recstream");
}
