/* test_prefdata.c — the ranking-to-pairs rules (aggregation, ties, strategies, margins,
 * agreement) on hand-built records with hand-computed answers; the hh prompt split; CSV
 * cells and line numbers; every export shape from in-memory rows; and that hostile
 * rows (mutated fixtures) give an error or a record, never a crash. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/prefdata.h"
#include "base/util.h"

/* A record with n options "o0".."o{n-1}" and one submitted annotator per rank row
 * (0 = unranked). */
static void make_record(PdRecord *r, int n, int n_ann, const double *ranks) {
    pd_record_init(r);
    r->prompt = json_string("p");
    for (int i = 0; i < n; i++) {
        char name[8];
        snprintf(name, sizeof name, "o%d", i);
        int k = pd_record_option(r, name);
        r->option_text[k] = xstrdup(name);
    }
    for (int a = 0; a < n_ann; a++) {
        PdAnnotation *an = pd_record_add_annotation(r, NULL, PD_SUBMITTED);
        for (int i = 0; i < n; i++) an->rank[i] = ranks[a * n + i];
    }
}

/* Pairs as "c>r" text, e.g. "0>2 1>2". */
static void pairs_str(const PdPairList *l, char *buf, size_t cap) {
    buf[0] = 0;
    for (int k = 0; k < l->n; k++) {
        size_t n = strlen(buf);
        snprintf(buf + n, cap - n, "%s%d>%d", k ? " " : "", l->p[k].chosen, l->p[k].rejected);
    }
}

static void expect_pairs(const double *ranks, int n, int n_ann, PdPairMode mode, PdAggregate agg, PdSkip want_skip,
                         const char *want, const char *what) {
    PdRecord r;
    make_record(&r, n, n_ann, ranks);
    PdPairOptions o = {mode, agg, 1, 0};
    PdPairList l = {0};
    double agree;
    PdSkip s = pd_record_pairs(&r, &o, &l, &agree);
    char got[256];
    pairs_str(&l, got, sizeof got);
    CHECK(s == want_skip, "%s: expected outcome '%s', got '%s'", what, pd_skip_name(want_skip), pd_skip_name(s));
    CHECK(strcmp(got, want) == 0, "%s: expected pairs '%s', got '%s'", what, want, got);
    free(l.p);
    pd_record_free(&r);
}

static void test_strategies(void) {
    /* One annotator, ranks o0=1, o1=2, o2=2 (tie), o3=3. */
    const double r1[] = {1, 2, 2, 3};
    expect_pairs(r1, 4, 1, PD_PAIRS_ALL, PD_AGG_MEAN, PD_USED, "0>1 0>2 0>3 1>3 2>3", "all with a tie");
    expect_pairs(r1, 4, 1, PD_PAIRS_BEST_WORST, PD_AGG_MEAN, PD_USED, "0>3", "best-worst");
    expect_pairs(r1, 4, 1, PD_PAIRS_BEST_REST, PD_AGG_MEAN, PD_USED, "0>1 0>2 0>3", "best-rest");
    expect_pairs(r1, 4, 1, PD_PAIRS_ADJACENT, PD_AGG_MEAN, PD_USED, "0>1 0>2 1>3 2>3", "adjacent");
    /* Tied best: both top options pair with the worst. */
    const double r2[] = {1, 1, 2};
    expect_pairs(r2, 3, 1, PD_PAIRS_BEST_WORST, PD_AGG_MEAN, PD_USED, "0>2 1>2", "tied best");
    /* Order follows score, not option index. */
    const double r3[] = {3, 1, 2};
    expect_pairs(r3, 3, 1, PD_PAIRS_ALL, PD_AGG_MEAN, PD_USED, "1>2 1>0 2>0", "score order");
    /* All tied, one option, unranked options ignored. */
    const double r4[] = {1, 1, 1};
    expect_pairs(r4, 3, 1, PD_PAIRS_ALL, PD_AGG_MEAN, PD_SKIP_ALL_TIED, "", "all tied");
    const double r5[] = {1, 0, 0};
    expect_pairs(r5, 3, 1, PD_PAIRS_ALL, PD_AGG_MEAN, PD_SKIP_ONE_OPTION, "", "one option");
    const double r6[] = {2, 0, 1};
    expect_pairs(r6, 3, 1, PD_PAIRS_ALL, PD_AGG_MEAN, PD_USED, "2>0", "unranked option");
}

static void test_aggregation(void) {
    /* Three annotators over three options:
     *   a: o0 < o1 < o2   b: o1 < o0 < o2   c: o0 < o2 < o1
     * mean ranks: o0 = 4/3, o1 = 2, o2 = 8/3  -> o0 > o1 > o2. */
    const double r[] = {1, 2, 3, 2, 1, 3, 1, 3, 2};
    expect_pairs(r, 3, 3, PD_PAIRS_ALL, PD_AGG_MEAN, PD_USED, "0>1 0>2 1>2", "mean");
    expect_pairs(r, 3, 3, PD_PAIRS_ALL, PD_AGG_BORDA, PD_USED, "0>1 0>2 1>2", "borda");
    expect_pairs(r, 3, 3, PD_PAIRS_ALL, PD_AGG_MAJORITY, PD_USED, "0>1 0>2 1>2", "majority");
    expect_pairs(r, 3, 3, PD_PAIRS_BEST_WORST, PD_AGG_EACH, PD_USED, "0>2 1>2 0>1", "each");

    /* Condorcet cycle: a: 0<1<2, b: 1<2<0, c: 2<0<1.  Every option has mean rank 2
     * (all tied) and every pairwise majority is 2:1 in a cycle, so Copeland scores tie
     * too: no pair under either rule. */
    const double cyc[] = {1, 2, 3, 3, 1, 2, 2, 3, 1};
    expect_pairs(cyc, 3, 3, PD_PAIRS_ALL, PD_AGG_MEAN, PD_SKIP_ALL_TIED, "", "cycle mean");
    expect_pairs(cyc, 3, 3, PD_PAIRS_ALL, PD_AGG_MAJORITY, PD_SKIP_ALL_TIED, "", "cycle majority");

    /* Mean and majority differ: a: 0<1 (1,2), b: 0<1 (1,3 of 3 options), c: 1<0 (1,3).
     * Options o0,o1,o2; ranks a={1,2,3}, b={1,3,2}, c={3,1,2}.
     * mean: o0 = 5/3, o1 = 2, o2 = 7/3 -> 0>1>2.  majority o0 vs o1: 2 to 1 -> 0>1;
     * o1 vs o2: a,c prefer o1, b prefers o2 -> 1>2; o0 vs o2: a,b -> 0>2. */
    const double mix[] = {1, 2, 3, 1, 3, 2, 3, 1, 2};
    expect_pairs(mix, 3, 3, PD_PAIRS_ADJACENT, PD_AGG_MAJORITY, PD_USED, "0>1 1>2", "majority adjacent");

    /* Margins: mean-rank difference; Borda equals it for complete strict rankings. */
    PdRecord rec;
    make_record(&rec, 3, 3, r);
    PdPairList l = {0};
    double agree;
    PdPairOptions o = {PD_PAIRS_BEST_WORST, PD_AGG_MEAN, 1, 0};
    pd_record_pairs(&rec, &o, &l, &agree);
    CHECK(l.n == 1 && fabs(l.p[0].margin - (8.0 / 3 - 4.0 / 3)) < 1e-12, "mean margin: expected 4/3, got %g",
          l.n ? l.p[0].margin : -1);
    o.aggregate = PD_AGG_BORDA;
    pd_record_pairs(&rec, &o, &l, &agree);
    CHECK(l.n == 1 && fabs(l.p[0].margin - 4.0 / 3) < 1e-12, "borda margin: expected 4/3, got %g",
          l.n ? l.p[0].margin : -1);
    /* Agreement: pairs (a,b): o0o1 differ, o0o2 same, o1o2 same -> 2/3;
     * (a,c): o0o1 same, o0o2 same, o1o2 differ -> 2/3; (b,c): o0o1 differ, o0o2 same,
     * o1o2 differ -> 1/3.  Mean 5/9. */
    CHECK(fabs(agree - 5.0 / 9) < 1e-12, "agreement: expected %.6f, got %.6f", 5.0 / 9, agree);
    o.min_agreement = 0.6;
    CHECK(pd_record_pairs(&rec, &o, &l, &agree) == PD_SKIP_LOW_AGREEMENT, "min-agreement 0.6 should skip");
    o.min_agreement = 0.5;
    CHECK(pd_record_pairs(&rec, &o, &l, &agree) == PD_USED, "min-agreement 0.5 should keep");
    o.min_annotators = 4;
    CHECK(pd_record_pairs(&rec, &o, &l, &agree) == PD_SKIP_FEW_ANNOTATORS, "min-annotators 4 should skip");
    /* Draft and discarded responses never count. */
    rec.ann[0].status = PD_DRAFT;
    rec.ann[1].status = PD_DISCARDED;
    rec.ann[2].status = PD_DRAFT;
    o.min_annotators = 1;
    CHECK(pd_record_pairs(&rec, &o, &l, &agree) == PD_SKIP_NOT_SUBMITTED, "only drafts should skip");
    free(l.p);
    pd_record_free(&rec);
    /* Agreement with ties counts a tie matching a tie. */
    const double t[] = {1, 1, 2, 1, 1, 2};
    make_record(&rec, 3, 2, t);
    CHECK(fabs(pd_agreement(&rec) - 1.0) < 1e-12, "tied agreement: expected 1, got %g", pd_agreement(&rec));
    pd_record_free(&rec);
}

static void test_hh_split(void) {
    const char *c = "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: yes";
    const char *r = "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: no";
    size_t n = pd_hh_prompt_length(c, r);
    CHECK(n == strlen("\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:"), "hh split: got %zu", n);
    /* The shared prefix "\n\nAssistant: Ye" is cut back to the marker. */
    n = pd_hh_prompt_length("\n\nHuman: q\n\nAssistant: Yes", "\n\nHuman: q\n\nAssistant: Yeah");
    CHECK(n == strlen("\n\nHuman: q\n\nAssistant:"), "hh split inside answer: got %zu", n);
    CHECK(pd_hh_prompt_length("\n\nHuman: x", "\n\nHuman: y") == 0, "hh split without marker should be 0");
    CHECK(pd_hh_prompt_length("", "") == 0, "hh split of empty strings should be 0");
}

static void test_csv(void) {
    Error e = {0};
    json_t *v = NULL;
    CHECK(pd_csv_cell("[1, 2]", 6, &v, "f:1", "c", &e) == 0 && json_is_array(v), "JSON cell should parse");
    json_decref(v);
    CHECK(pd_csv_cell("[INST] hi", 9, &v, "f:1", "c", &e) == 0 && json_is_string(v), "text cell stays text");
    json_decref(v);
    const char *py = "[{'user_id': 'u', 'value': None}]";
    CHECK(pd_csv_cell(py, strlen(py), &v, "f:3", "q", &e) == EX_DATAERR && strstr(e.msg, "Python repr") &&
              strstr(e.msg, "f:3"),
          "Python repr cell: expected an error naming it, got '%s'", e.msg);

    /* Line numbers: a quoted cell spanning lines, a blank line. */
    char path[] = "/tmp/test_prefdata_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs("a,b\n1,\"two\nlines\"\n\n3,4\n5\n", f);
    fclose(f);
    PdInput in;
    CHECK(pd_input_open(&in, path, &e) == 0 && in.kind == PD_CONT_CSV, "CSV input should open: %s", e.msg);
    json_t *row;
    CHECK(pd_input_next(&in, &row, &e) == 0 && row, "row 1");
    CHECK(row && strcmp(json_string_value(json_object_get(row, "b")), "two\nlines") == 0, "multi-line cell");
    CHECK(strstr(in.where, ":2") != NULL, "row 1 should be at line 2, got %s", in.where);
    json_decref(row);
    CHECK(pd_input_next(&in, &row, &e) == 0 && row, "row 2");
    CHECK(strstr(in.where, ":5") != NULL, "row 2 should be at line 5, got %s", in.where);
    json_decref(row);
    CHECK(pd_input_next(&in, &row, &e) == EX_DATAERR && strstr(e.msg, ":6") && strstr(e.msg, "1 cells"),
          "short row: expected an error at line 6, got '%s'", e.msg);
    pd_input_close(&in);
    unlink(path);
}

/* Parses one JSON row with a fresh parser; returns the error code. */
static int parse_one(const char *json, PdShape forced, PdRecordList *out, Error *e) {
    json_error_t je;
    json_t *row = json_loads(json, 0, &je);
    if (!row) {
        printf("bad test JSON: %s\n", je.text);
        exit(1);
    }
    PdParser p;
    pd_parser_init(&p, forced, NULL, NULL);
    int rc = pd_parse_row(&p, row, "t:1", out, e);
    pd_parser_free(&p);
    json_decref(row);
    return rc;
}

static void test_shapes(void) {
    struct {
        const char *json;
        PdShape shape;
        int n_options, n_ann;
    } cases[] = {
        {"{\"fields\":{\"prompt\":\"p\",\"a\":\"A\",\"b\":\"B\"},\"responses\":[{\"user_id\":\"u\",\"status\":"
         "\"submitted\",\"values\":{\"q\":{\"value\":[{\"value\":\"a\",\"rank\":2},{\"value\":\"b\",\"rank\":1}]}}}]}",
         PD_SHAPE_ARGILLA1, 2, 1},
        {"{\"prompt\":\"p\",\"a\":\"A\",\"b\":\"B\",\"q\":[{\"user_id\":\"u\",\"status\":\"submitted\",\"value\":"
         "{\"rank\":[1,2],\"value\":[\"a\",\"b\"]}}]}",
         PD_SHAPE_ARGILLA1_HF, 2, 1},
        {"{\"id\":\"x\",\"fields\":{\"prompt\":\"p\",\"a\":\"A\",\"b\":\"B\"},\"responses\":{\"q\":[{\"value\":[\"b\","
         "\"a\"],\"user_id\":\"u\"}]}}",
         PD_SHAPE_ARGILLA2, 2, 1},
        {"{\"prompt\":\"p\",\"a\":\"A\",\"b\":\"B\",\"q.responses\":[[\"a\",\"b\"],[\"b\",\"a\"]],"
         "\"q.responses.users\":[\"u\",\"v\"],\"q.responses.status\":[\"submitted\",\"draft\"]}",
         PD_SHAPE_ARGILLA2_FLAT, 2, 2},
        {"{\"history\":\"h\",\"human_ref_A\":\"a\",\"human_ref_B\":\"b\",\"labels\":1}", PD_SHAPE_SHP, 2, 1},
        {"{\"info\":{\"id\":\"i\",\"post\":\"p\"},\"summaries\":[{\"text\":\"a\"},{\"text\":\"b\"}],\"choice\":1}",
         PD_SHAPE_SUMMARIZE, 2, 1},
        {"{\"chosen\":\"\\n\\nHuman: q\\n\\nAssistant: a\",\"rejected\":\"\\n\\nHuman: q\\n\\nAssistant: b\"}",
         PD_SHAPE_HH, 2, 1},
        {"{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\"}", PD_SHAPE_PAIRS, 2, 1},
        {"{\"chosen\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}],"
         "\"rejected\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"b\"}],"
         "\"score_chosen\":5,\"score_rejected\":1}",
         PD_SHAPE_ULTRAFEEDBACK, 2, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        json_t *row = json_loads(cases[k].json, 0, NULL);
        PdShape got = pd_shape_detect(row);
        json_decref(row);
        CHECK(got == cases[k].shape, "case %zu: detected %s, expected %s", k, pd_shape_name(got),
              pd_shape_name(cases[k].shape));
        PdRecordList l = {0};
        Error e = {0};
        int rc = parse_one(cases[k].json, PD_SHAPE_AUTO, &l, &e);
        CHECK(rc == 0 && l.n == 1, "case %zu (%s): expected one record, got rc %d n %d: %s", k,
              pd_shape_name(cases[k].shape), rc, l.n, e.msg);
        if (rc == 0 && l.n == 1) {
            CHECK(l.r[0].n_options == cases[k].n_options && l.r[0].n_ann == cases[k].n_ann,
                  "case %zu: expected %d options / %d annotators, got %d / %d", k, cases[k].n_options, cases[k].n_ann,
                  l.r[0].n_options, l.r[0].n_ann);
            PdPairOptions o = {PD_PAIRS_ALL, PD_AGG_MEAN, 1, 0};
            PdPairList pl = {0};
            double agree;
            PdSkip s = pd_record_pairs(&l.r[0], &o, &pl, &agree);
            /* In every case the option whose text is "B"/"b" wins except hh/pairs/UF/2.x
             * flat/1.x HF, where "a" wins; check the chosen text against the row. */
            const char *want = (cases[k].shape == PD_SHAPE_ARGILLA1 || cases[k].shape == PD_SHAPE_ARGILLA2) ? "B"
                               : cases[k].shape == PD_SHAPE_SUMMARIZE                                       ? "b"
                               : (cases[k].shape == PD_SHAPE_ARGILLA1_HF || cases[k].shape == PD_SHAPE_ARGILLA2_FLAT)
                                   ? "A"
                               : cases[k].shape == PD_SHAPE_HH ? " a"
                                                               : "a";
            CHECK(s == PD_USED && pl.n == 1 && strcmp(l.r[0].option_text[pl.p[0].chosen], want) == 0,
                  "case %zu (%s): expected chosen '%s', got '%s'", k, pd_shape_name(cases[k].shape), want,
                  pl.n ? l.r[0].option_text[pl.p[0].chosen] : "(no pair)");
            free(pl.p);
        }
        pd_list_clear(&l);
        free(l.r);
    }
}

static void expect_error(const char *json, PdShape shape, const char *needle, const char *what) {
    PdRecordList l = {0};
    Error e = {0};
    int rc = parse_one(json, shape, &l, &e);
    CHECK(rc == EX_DATAERR && strstr(e.msg, needle) && strstr(e.msg, "t:1"),
          "%s: expected exit 65 and a message with '%s' and t:1, got %d '%s'", what, needle, rc, e.msg);
    CHECK(l.n == 0, "%s: no record should be left behind on error, got %d", what, l.n);
    pd_list_clear(&l);
    free(l.r);
}

static void test_errors(void) {
    expect_error("{\"fields\":{\"prompt\":\"p\",\"a\":\"A\"},\"responses\":[{\"status\":\"submitted\",\"values\":{"
                 "\"q\":{\"value\":[{\"value\":\"a\",\"rank\":0}]}}}]}",
                 PD_SHAPE_ARGILLA1, "out of range", "rank 0");
    expect_error("{\"fields\":{\"prompt\":\"p\",\"a\":\"A\"},\"responses\":[{\"status\":\"submitted\",\"values\":{"
                 "\"q\":{\"value\":[{\"value\":\"a\",\"rank\":1.5}]}}}]}",
                 PD_SHAPE_ARGILLA1, "out of range", "fractional rank");
    expect_error("{\"fields\":{\"prompt\":\"p\",\"a\":\"A\"},\"responses\":[{\"status\":\"sent\",\"values\":{"
                 "\"q\":{\"value\":[{\"value\":\"a\",\"rank\":1}]}}}]}",
                 PD_SHAPE_ARGILLA1, "unknown response status", "bad status");
    expect_error("{\"fields\":{\"prompt\":\"p\",\"a\":\"A\",\"b\":\"B\"},\"responses\":{\"q\":[{\"value\":[\"a\","
                 "\"a\"]}]}}",
                 PD_SHAPE_ARGILLA2, "ranked twice", "duplicate option");
    expect_error("{\"fields\":{\"a\":\"A\",\"b\":\"B\"},\"responses\":{\"q\":[{\"value\":[\"a\",\"b\"]}]}}",
                 PD_SHAPE_ARGILLA2, "no prompt field", "missing prompt");
    expect_error("{\"fields\":{\"prompt\":7,\"a\":\"A\"},\"responses\":{\"q\":[{\"value\":[\"a\"]}]}}",
                 PD_SHAPE_ARGILLA2, "must be a string", "prompt of wrong type");
    expect_error("{\"prompt\":\"p\",\"q.responses\":[[\"a\"]],\"q.responses.status\":[\"submitted\",\"draft\"]}",
                 PD_SHAPE_ARGILLA2_FLAT, "parallel lists", "parallel lists");
    expect_error("{\"history\":\"h\",\"human_ref_A\":\"a\",\"human_ref_B\":\"b\",\"labels\":2}", PD_SHAPE_SHP, "labels",
                 "SHP label");
    expect_error("{\"chosen\":\"\\n\\nHuman: a\",\"rejected\":\"\\n\\nHuman: b\"}", PD_SHAPE_HH, "Assistant",
                 "hh without marker");
    expect_error(
        "{\"prompt\":{\"role\":\"prompter\",\"text\":\"x\",\"replies\":[{\"role\":\"robot\",\"text\":\"y\"}]}}",
        PD_SHAPE_OASST, "unknown message role", "OASST role");
    expect_error("{\"a\":1}", PD_SHAPE_AUTO, "--format", "unknown shape");
}

/* Mutated fixture rows: every prefix cut and byte flip either parses to records or gives
 * EX_DATAERR — never a crash, a leak (ASan build) or another code. */
static void test_hostile(void) {
    static const char *const files[] = {
        "tests/data/argilla/a1_records.jsonl",  "tests/data/argilla/a1_hf.jsonl",
        "tests/data/argilla/a2_nested.jsonl",   "tests/data/argilla/a2_flat.jsonl",
        "tests/data/argilla/oasst_trees.jsonl", "tests/data/argilla/ultrafeedback.jsonl"};
    static const char *const swaps[] = {"1", "-1", "null", "\"x\"", "[]", "{}", "[[]]", "99", "true", "0.5"};
    Rng rng;
    rng_seed(&rng, 7);
    long tried = 0;
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        char *text;
        size_t len;
        Error e = {0};
        if (read_file(files[f], &text, &len, &e)) {
            printf("FAIL cannot read fixture %s: %s\n", files[f], e.msg);
            failures++;
            continue;
        }
        char *line = strtok(text, "\n");
        while (line) {
            json_t *orig = json_loads(line, 0, NULL);
            for (int it = 0; it < 60 && orig; it++) {
                /* Replace one random value anywhere in the row by a value of another type. */
                json_t *row = json_deep_copy(orig);
                json_t *node = row;
                for (int depth = 0; depth < 6; depth++) {
                    json_t *next = NULL;
                    if (json_is_object(node) && json_object_size(node)) {
                        size_t pick = rng_below(&rng, json_object_size(node)), i = 0;
                        const char *k;
                        json_t *v;
                        json_object_foreach(node, k, v) {
                            if (i++ == pick) {
                                if (depth > 0 && rng_below(&rng, 3) == 0) {
                                    json_object_set_new(node, k,
                                                        json_loads(swaps[rng_below(&rng, 10)], JSON_DECODE_ANY, NULL));
                                    next = NULL;
                                } else {
                                    next = v;
                                }
                                break;
                            }
                        }
                    } else if (json_is_array(node) && json_array_size(node)) {
                        size_t i = rng_below(&rng, json_array_size(node));
                        if (rng_below(&rng, 3) == 0)
                            json_array_set_new(node, i, json_loads(swaps[rng_below(&rng, 10)], JSON_DECODE_ANY, NULL));
                        else
                            next = json_array_get(node, i);
                    }
                    if (!next) break;
                    node = next;
                }
                PdParser p;
                pd_parser_init(&p, PD_SHAPE_AUTO, NULL, NULL);
                PdRecordList l = {0};
                int rc = pd_parse_row(&p, row, "fuzz", &l, &e);
                CHECK(rc == 0 || rc == EX_DATAERR, "mutated row of %s: unexpected code %d", files[f], rc);
                for (int k = 0; k < l.n; k++) {
                    PdPairOptions o = {PD_PAIRS_ALL, (PdAggregate)(it % 4), 1, 0};
                    PdPairList pl = {0};
                    double agree;
                    pd_record_pairs(&l.r[k], &o, &pl, &agree);
                    for (int j = 0; j < pl.n; j++) {
                        CHECK(pl.p[j].margin > 0, "pair margin must be positive, got %g", pl.p[j].margin);
                        CHECK(l.r[k].option_text[pl.p[j].chosen] && l.r[k].option_text[pl.p[j].rejected],
                              "pair without option text");
                    }
                    free(pl.p);
                }
                pd_list_clear(&l);
                free(l.r);
                pd_parser_free(&p);
                json_decref(row);
                tried++;
            }
            json_decref(orig);
            line = strtok(NULL, "\n");
        }
        free(text);
    }
    CHECK(tried > 500, "expected to try over 500 mutated rows, tried %ld", tried);
    printf("hostile rows tried: %ld\n", tried);
}

/* Whole files: every fixture cut at random points and with random bytes flipped, read
 * through the container layer (JSONL, JSON array, CSV) and the shape parsers.  Every
 * row must give records or EX_DATAERR; the input must end cleanly. */
static void test_hostile_files(void) {
    static const char *const files[] = {"tests/data/argilla/a2_flat.csv", "tests/data/argilla/a2_to_json.json",
                                        "tests/data/argilla/a1_records.jsonl", "tests/data/argilla/hh.jsonl",
                                        "tests/data/argilla/bad/python_repr.csv"};
    Rng rng;
    rng_seed(&rng, 11);
    char path[] = "/tmp/test_prefdata_fuzz_XXXXXX.csv";
    int fd = mkstemps(path, 4);
    if (fd < 0) {
        printf("FAIL cannot create a temporary file\n");
        failures++;
        return;
    }
    close(fd);
    long rows = 0, files_tried = 0;
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        char *text;
        size_t len;
        Error e = {0};
        if (read_file(files[f], &text, &len, &e)) {
            printf("FAIL cannot read fixture %s: %s\n", files[f], e.msg);
            failures++;
            continue;
        }
        for (int it = 0; it < 80; it++) {
            size_t n = len ? (size_t)rng_below(&rng, len + 1) : 0;
            char *buf = xmalloc(n + 1);
            memcpy(buf, text, n);
            for (int k = 0; k < 3 && n; k++)
                if (rng_below(&rng, 2)) buf[rng_below(&rng, n)] = (char)rng_below(&rng, 256);
            /* Odd iterations are read as CSV (by the .csv name), even ones by content. */
            const char *target = path;
            char alt[sizeof path];
            if (it % 2 == 0) {
                memcpy(alt, path, sizeof path);
                alt[strlen(alt) - 4] = 0; /* drop ".csv" */
                target = alt;
            }
            FILE *out = fopen(target, "wb");
            fwrite(buf, 1, n, out);
            fclose(out);
            free(buf);
            PdInput in;
            PdParser p;
            pd_parser_init(&p, PD_SHAPE_AUTO, NULL, NULL);
            PdRecordList l = {0};
            int rc = pd_input_open(&in, target, &e);
            CHECK(rc == 0 || rc == EX_DATAERR, "%s cut at %zu: open gave %d (%s)", files[f], n, rc, e.msg);
            for (int guard = 0; rc == 0 && guard < 10000; guard++) {
                json_t *row = NULL;
                int r = pd_input_next(&in, &row, &e);
                if (!r && !row) break;
                if (r) {
                    CHECK(r == EX_DATAERR, "%s cut at %zu: row gave %d (%s)", files[f], n, r, e.msg);
                    if (in.broken || in.kind == PD_CONT_ARRAY) break;
                    continue;
                }
                r = pd_parse_row(&p, row, in.where, &l, &e);
                json_decref(row);
                CHECK(r == 0 || r == EX_DATAERR, "%s cut at %zu: parse gave %d (%s)", files[f], n, r, e.msg);
                pd_list_clear(&l);
                rows++;
            }
            pd_input_close(&in);
            pd_parser_free(&p);
            free(l.r);
            if (it % 2 == 0) unlink(target);
            files_tried++;
        }
        free(text);
    }
    unlink(path);
    CHECK(files_tried == 400 && rows > 100, "expected 400 files and over 100 rows, got %ld files, %ld rows",
          files_tried, rows);
    printf("hostile files tried: %ld (%ld rows)\n", files_tried, rows);
}

static void test_argilla2_writer(void) {
    char *names[] = {"answer_a", "answer_b"}, *texts[] = {"A", "B"};
    int order[] = {1, 0};
    json_t *rec = pd_argilla2_record("id1", "p", 2, names, texts, "preference", "sim", order);
    char *s = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(rec);
    PdRecordList l = {0};
    Error e = {0};
    int rc = parse_one(s, PD_SHAPE_AUTO, &l, &e);
    CHECK(rc == 0 && l.n == 1, "written 2.x record should read back: %s", e.msg);
    if (l.n == 1) {
        PdPairOptions o = {PD_PAIRS_ALL, PD_AGG_MEAN, 1, 0};
        PdPairList pl = {0};
        double agree;
        pd_record_pairs(&l.r[0], &o, &pl, &agree);
        CHECK(pl.n == 1 && strcmp(l.r[0].option_text[pl.p[0].chosen], "B") == 0, "round trip: expected B chosen");
        free(pl.p);
    }
    pd_list_clear(&l);
    free(l.r);
    free(s);
}

int main(void) {
    test_strategies();
    test_aggregation();
    test_hh_split();
    test_csv();
    test_shapes();
    test_errors();
    test_hostile();
    test_hostile_files();
    test_argilla2_writer();
    return check_summary("test_prefdata");
}
