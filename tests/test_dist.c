/* test_dist.c — common/base/dist.h, in three modes:
 *
 *  test_dist                 one process (how `make check` runs it, MPI build or
 *                            not): rank 0 of 1, reductions and broadcasts leave
 *                            buffers alone, allgather copies, dist_agree passes
 *                            the status through, the float hash sees every bit;
 *  mpirun -np N test_dist    (tests/t_mpi.sh) the collectives against values each
 *                            rank can predict: sums of rank-dependent numbers,
 *                            allgather order, broadcast from the last rank, an
 *                            agreed failure on one rank, dist_check_same;
 *  test_dist compare A B TOL compares two safetensors files tensor by tensor and
 *                            fails when any tensor's max |a-b| / max |a| exceeds
 *                            TOL (tests/t_mpi.sh: N ranks against one process).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dist.h"
#include "formats/safetensors.h"
#include "base/util.h"

static int failures;
#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            failures++;                                                                                                \
            fprintf(stderr, "FAIL %s:%d (rank %d): ", __FILE__, __LINE__, dist_rank());                                \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
        }                                                                                                              \
    } while (0)

static void test_hash(void) {
    float a[5] = {1.0f, -2.5f, 0.0f, 3.25f, 1e-30f}, b[5];
    memcpy(b, a, sizeof a);
    CHECK(dist_hash_floats(a, 5) == dist_hash_floats(b, 5), "same floats must hash the same");
    b[4] = nextafterf(b[4], 1.0f); /* one bit in the last element */
    CHECK(dist_hash_floats(a, 5) != dist_hash_floats(b, 5), "a one-ulp change must change the hash");
    b[4] = a[4];
    b[2] = -0.0f; /* a different bit pattern, though == compares equal */
    CHECK(dist_hash_floats(a, 5) != dist_hash_floats(b, 5), "0.0 and -0.0 must hash differently");
    CHECK(dist_hash_floats(a, 0) == dist_hash_floats(b, 0), "empty inputs hash the same");
}

static void test_single(void) {
    Error e;
    CHECK(dist_rank() == 0 && dist_size() == 1 && dist_is_root(), "expected rank 0 of 1, got %d of %d", dist_rank(),
          dist_size());
    float f[3] = {1.5f, -2.0f, 3.0f};
    double d[2] = {0.25, -8.0};
    CHECK(dist_allreduce_sum(f, 3, &e) == 0 && f[0] == 1.5f && f[1] == -2.0f && f[2] == 3.0f,
          "allreduce of one rank must leave the floats as they were, got %g %g %g", f[0], f[1], f[2]);
    CHECK(dist_allreduce_sum_f64(d, 2, &e) == 0 && d[0] == 0.25 && d[1] == -8.0, "allreduce_f64 changed %g %g", d[0],
          d[1]);
    int x = 7;
    CHECK(dist_broadcast(&x, sizeof x, 0, &e) == 0 && x == 7, "broadcast changed 7 to %d", x);
    char s[4] = "abc", r[4] = "";
    CHECK(dist_allgather(s, 4, r, &e) == 0 && !strcmp(r, "abc"), "allgather of one rank: expected abc, got %s", r);
    CHECK(dist_barrier(&e) == 0, "barrier failed");
    CHECK(dist_agree(0, &e) == 0, "agree(0) must be 0");
    CHECK(dist_agree(65, &e) == 65, "agree(65) on one rank must be 65");
    CHECK(dist_check_same(f, 3, "x", &e) == 0, "check_same on one rank must pass");
}

static void test_collectives(void) {
    Error e;
    int r = dist_rank(), n = dist_size();
    /* sums: element i of rank r is r + i/4 (exact in float), so the sum is
     * n(n-1)/2 + n*i/4 whatever the order of additions */
    enum { K = 1000 };
    float *f = xmalloc(K * sizeof(float));
    for (int i = 0; i < K; i++) f[i] = (float)r + (float)i / 4.0f;
    CHECK(dist_allreduce_sum(f, K, &e) == 0, "allreduce: %s", e.msg);
    int bad = 0;
    for (int i = 0; i < K; i++)
        if (f[i] != (float)(n * (n - 1) / 2) + (float)n * (float)i / 4.0f) bad++;
    CHECK(bad == 0, "allreduce: %d of %d sums wrong (element 1: expected %g, got %g)", bad, K,
          (double)(n * (n - 1) / 2) + n * 0.25, f[1]);
    free(f);
    double d[2] = {1.0 + r, -0.5 * r};
    CHECK(dist_allreduce_sum_f64(d, 2, &e) == 0 && d[0] == n + n * (n - 1) / 2.0 && d[1] == -0.25 * n * (n - 1),
          "allreduce_f64: expected %g %g, got %g %g", n + n * (n - 1) / 2.0, -0.25 * n * (n - 1), d[0], d[1]);
    /* allgather puts rank k's block at k */
    int mine[2] = {r, 100 + r}, *all = xmalloc((size_t)n * sizeof mine);
    CHECK(dist_allgather(mine, sizeof mine, all, &e) == 0, "allgather: %s", e.msg);
    for (int k = 0; k < n; k++)
        CHECK(all[2 * k] == k && all[2 * k + 1] == 100 + k, "allgather block %d: expected %d %d, got %d %d", k, k,
              100 + k, all[2 * k], all[2 * k + 1]);
    free(all);
    /* broadcast from the last rank */
    long v = r == n - 1 ? 123456789012L : -1;
    CHECK(dist_broadcast(&v, sizeof v, n - 1, &e) == 0 && v == 123456789012L,
          "broadcast: expected 123456789012, got %ld", v);
    /* a failure on the last rank only reaches everyone */
    int rc = dist_agree(r == n - 1 ? 74 : 0, &e);
    CHECK(rc == 74, "agree: the last rank failed with 74, got %d", rc);
    if (r != n - 1)
        CHECK(strstr(e.msg, "failed") != NULL, "agree: expected a message naming the rank, got \"%s\"", e.msg);
    CHECK(dist_agree(0, &e) == 0, "agree(0) everywhere must be 0");
    /* same and different buffers */
    float w[3] = {1, 2, 3};
    CHECK(dist_check_same(w, 3, "w", &e) == 0, "check_same on equal buffers: %s", e.msg);
    if (r == n - 1) w[1] = 2.0000002f;
    rc = dist_check_same(w, 3, "w", &e);
    CHECK(rc == EX_SOFTWARE, "check_same on different buffers: expected %d, got %d", EX_SOFTWARE, rc);
    CHECK(dist_barrier(&e) == 0, "barrier: %s", e.msg);
}

static int compare(const char *a, const char *b, double tol) {
    Error e;
    StFile fa, fb;
    if (st_open(&fa, a, &e) || st_open(&fb, b, &e)) {
        fprintf(stderr, "test_dist: %s\n", e.msg);
        return 2;
    }
    int rc = 0;
    double worst = 0;
    const char *worst_name = "";
    if (fa.n != fb.n) {
        fprintf(stderr, "FAIL: %s has %d tensors, %s %d\n", a, fa.n, b, fb.n);
        rc = 1;
    }
    for (int i = 0; i < fa.n && rc == 0; i++) {
        const StTensor *ta = &fa.tensors[i], *tb = st_find(&fb, ta->name);
        if (!tb || tb->numel != ta->numel) {
            fprintf(stderr, "FAIL: tensor %s missing or of another size in %s\n", ta->name, b);
            rc = 1;
            break;
        }
        float *x = xmalloc((ta->numel ? ta->numel : 1) * sizeof(float)),
              *y = xmalloc((ta->numel ? ta->numel : 1) * sizeof(float));
        if (st_to_f32(ta, x, &e) || st_to_f32(tb, y, &e)) {
            fprintf(stderr, "test_dist: %s\n", e.msg);
            rc = 2;
        }
        double dmax = 0, amax = 0;
        for (size_t k = 0; rc == 0 && k < ta->numel; k++) {
            double dd = fabs((double)x[k] - y[k]);
            if (!(dd <= dmax)) dmax = dd; /* NaN sticks */
            if (fabs(x[k]) > amax) amax = fabs(x[k]);
        }
        double rel = amax > 0 ? dmax / amax : dmax;
        if (!(rel <= worst)) {
            worst = rel;
            worst_name = ta->name;
        }
        free(x);
        free(y);
    }
    if (rc == 0) {
        printf("worst relative difference %.3g (tensor %s), tolerance %.3g\n", worst, worst_name, tol);
        if (!(worst <= tol)) {
            fprintf(stderr, "FAIL: expected every tensor within %.3g relative, got %.3g in %s\n", tol, worst,
                    worst_name);
            rc = 1;
        }
    }
    st_close(&fa);
    st_close(&fb);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "compare")) return compare(argv[2], argv[3], atof(argv[4]));
    if (argc != 1) {
        fprintf(stderr, "usage: test_dist [compare A.safetensors B.safetensors TOL]\n");
        return 64;
    }
    Error e;
    if (dist_init(&e)) {
        fprintf(stderr, "test_dist: %s\n", e.msg);
        return 1;
    }
    test_hash();
    if (dist_size() == 1)
        test_single();
    else
        test_collectives();
    /* every rank must learn whether any rank failed before it exits */
    int any = dist_agree(failures ? 1 : 0, &e);
    if (failures || any) {
        if (!failures) fprintf(stderr, "FAIL (rank %d): %s\n", dist_rank(), e.msg);
        return 1;
    }
    printf("test_dist: rank %d of %d: all checks passed\n", dist_rank(), dist_size());
    return 0;
}
