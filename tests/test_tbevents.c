/* test_tbevents.c — the TensorBoard event writer (common/base/tbevents.h) against
 * TensorBoard's own writer:
 *   1. CRC-32C on the standard check values (RFC 3720 B.4, "123456789");
 *   2. every record of tests/oracle/fixtures/tb-events.tfevents (written by the
 *      tensorboard package's RecordWriter and protobuf classes,
 *      tests/oracle/make_tbevents_fixture.py) has the length and data CRCs our
 *      crc32c_masked computes;
 *   3. tb_write_file_version + tb_write_scalars of the same Events write the same
 *      bytes as that file (framing, CRCs, proto3 encoding with default fields left out);
 *   4. tb_open makes the directory and an events.out.tfevents.* file; the metrics log
 *      writes its records there with transformers' tags (train/x, eval/x), non-finite
 *      values left out;
 *   5. tb_tag. */
#define _GNU_SOURCE /* memmem */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/metrics.h"
#include "base/tbevents.h"
#include "base/util.h"
#include "check.h"

#define FIX "tests/oracle/fixtures/"

static unsigned char *slurp(const char *path, size_t *n) {
    char *text = NULL;
    Error e = {0};
    if (read_file(path, &text, n, &e)) {
        CHECK(0, "%s", e.msg);
        return NULL;
    }
    return (unsigned char *)text;
}

static uint64_t get_le(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Walks the records of buf: returns how many, or -1 on a framing/CRC mismatch. */
static int check_records(const unsigned char *buf, size_t n, const char *what) {
    size_t at = 0;
    int k = 0;
    while (at < n) {
        if (n - at < 12) {
            CHECK(0, "%s: record %d: %zu bytes left, header needs 12", what, k, n - at);
            return -1;
        }
        uint64_t len = get_le(buf + at, 8);
        uint32_t lcrc = (uint32_t)get_le(buf + at + 8, 4);
        CHECK(lcrc == crc32c_masked(crc32c(buf + at, 8)), "%s: record %d: length CRC %08x, computed %08x", what, k,
              lcrc, crc32c_masked(crc32c(buf + at, 8)));
        if (len > n - at - 16) {
            CHECK(0, "%s: record %d: length %llu beyond the file", what, k, (unsigned long long)len);
            return -1;
        }
        uint32_t dcrc = (uint32_t)get_le(buf + at + 12 + len, 4);
        CHECK(dcrc == crc32c_masked(crc32c(buf + at + 12, (size_t)len)), "%s: record %d: data CRC %08x, computed %08x",
              what, k, dcrc, crc32c_masked(crc32c(buf + at + 12, (size_t)len)));
        at += 16 + (size_t)len;
        k++;
    }
    return k;
}

static void test_crc(void) {
    /* RFC 3720 B.4 and the usual check value of CRC-32C */
    CHECK(crc32c("123456789", 9) == 0xE3069283u, "crc32c(123456789) = %08x, expected e3069283", crc32c("123456789", 9));
    unsigned char z[32] = {0}, o[32];
    memset(o, 0xFF, sizeof o);
    CHECK(crc32c(z, 32) == 0x8A9136AAu, "crc32c(32 zero bytes) = %08x, expected 8a9136aa", crc32c(z, 32));
    CHECK(crc32c(o, 32) == 0x62A8AB43u, "crc32c(32 0xff bytes) = %08x, expected 62a8ab43", crc32c(o, 32));
    CHECK(crc32c("", 0) == 0, "crc32c of nothing");
}

static void test_same_bytes_as_tensorboard(void) {
    size_t n_want = 0;
    unsigned char *want = slurp(FIX "tb-events.tfevents", &n_want);
    json_error_t je;
    json_t *spec = json_load_file(FIX "tb-events.json", 0, &je);
    CHECK(spec != NULL, "tb-events.json: %s", je.text);
    if (!want || !spec) return;
    CHECK(check_records(want, n_want, "tensorboard's file") == 4, "tensorboard's file: expected 4 records");

    char *mem = NULL;
    size_t n_got = 0;
    FILE *fp = open_memstream(&mem, &n_got);
    TbWriter w = {.fp = fp, .path = "(memory)"};
    Error e = {0};
    CHECK(tb_write_file_version(&w, json_number_value(json_object_get(spec, "file_version_wall_time")), &e) == 0,
          "file_version: %s", e.msg);
    size_t i;
    json_t *ev;
    json_array_foreach(json_object_get(spec, "events"), i, ev) {
        const json_t *tags = json_object_get(ev, "tags"), *vals = json_object_get(ev, "values");
        int n = (int)json_array_size(tags);
        const char *tp[8];
        double v[8];
        for (int k = 0; k < n && k < 8; k++) {
            tp[k] = json_string_value(json_array_get(tags, k));
            v[k] = json_number_value(json_array_get(vals, k));
        }
        CHECK(tb_write_scalars(&w, (long)json_integer_value(json_object_get(ev, "step")),
                               json_number_value(json_object_get(ev, "wall_time")), tp, v, n, &e) == 0,
              "tb_write_scalars: %s", e.msg);
    }
    fclose(fp);
    CHECK(n_got == n_want, "%zu bytes written, tensorboard wrote %zu", n_got, n_want);
    size_t first = 0;
    while (first < n_got && first < n_want && (unsigned char)mem[first] == want[first]) first++;
    CHECK(n_got == n_want && first == n_want, "bytes differ from tensorboard's from offset %zu (of %zu)", first,
          n_want);
    free(mem);
    free(want);
    json_decref(spec);
}

/* the one events.out.tfevents.* file of dir, or NULL */
static char *event_file(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char *found = NULL;
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, "events.out.tfevents.", 20) == 0) {
            count++;
            free(found);
            found = path_join(dir, de->d_name);
        }
    closedir(d);
    CHECK(count == 1, "%s: %d event files, expected 1", dir, count);
    return found;
}

static void test_metrics_log(void) {
    char tmpl[] = "/tmp/test_tbevents.XXXXXX";
    char *tmp = mkdtemp(tmpl);
    CHECK(tmp != NULL, "mkdtemp");
    if (!tmp) return;
    char *dir = path_join(tmp, "a/b-logs"); /* parents are made */
    MetricsLog l;
    Error e = {0};
    CHECK(metrics_log_open(&l, NULL, -1, &e) == 0, "open without a JSONL path");
    CHECK(metrics_log_open_tensorboard(&l, dir, &e) == 0, "open tensorboard: %s", e.msg);
    const char *head[] = {"loss", "learning_rate"};
    double hv[] = {1.5, NAN};
    Metrics m;
    metrics_reset(&m);
    metrics_add(&m, "rewards/margins", 3.0, 2.0);
    CHECK(metrics_log_write(&l, 1, 0.5, head, hv, 2, &m, &e) == 0, "write: %s", e.msg);
    Metrics ev;
    metrics_reset(&ev);
    metrics_add(&ev, "eval_loss", 0.25, 1.0);
    CHECK(metrics_log_write(&l, 1, 0.5, NULL, NULL, 0, &ev, &e) == 0, "write eval: %s", e.msg);
    CHECK(metrics_log_close(&l, &e) == 0, "close: %s", e.msg);
    char *f = event_file(dir);
    size_t n = 0;
    unsigned char *buf = f ? slurp(f, &n) : NULL;
    if (buf) {
        CHECK(check_records(buf, n, f) == 3, "%s: expected 3 records (version, train, eval)", f);
        /* tags as the transformers TensorBoard callback writes them; NaN left out */
        CHECK(memmem(buf, n, "brain.Event:2", 13) != NULL, "no file_version record");
        const char *has[] = {"train/loss", "train/epoch", "train/rewards/margins", "eval/loss"};
        for (int i = 0; i < 4; i++) CHECK(memmem(buf, n, has[i], strlen(has[i])) != NULL, "no tag %s", has[i]);
        CHECK(memmem(buf, n, "learning_rate", 13) == NULL, "a NaN value was written");
        CHECK(memmem(buf, n, "eval/epoch", 10) == NULL, "an eval record carries epoch");
        float want = 1.5f; /* simple_value is a float: tag bytes, then key 0x15 and 4 bytes */
        unsigned char pat[5] = {0x15};
        memcpy(pat + 1, &want, 4);
        CHECK(memmem(buf, n, pat, 5) != NULL, "loss 1.5 not found as a float");
    }
    free(buf);
    free(f);
    free(dir);
    remove_tree(tmp);
}

static void test_tags(void) {
    char t[64];
    tb_tag("loss", t, sizeof t);
    CHECK(strcmp(t, "train/loss") == 0, "tag of loss: %s", t);
    tb_tag("eval_rewards/accuracies", t, sizeof t);
    CHECK(strcmp(t, "eval/rewards/accuracies") == 0, "tag of eval_rewards/accuracies: %s", t);
}

int main(void) {
    test_crc();
    test_same_bytes_as_tensorboard();
    test_metrics_log();
    test_tags();
    if (failures) {
        printf("%d checks failed\n", failures);
        return 1;
    }
    printf("TensorBoard event files: same bytes as tensorboard's writer\n");
    return 0;
}
