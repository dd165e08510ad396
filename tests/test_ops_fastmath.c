/* test_ops_fastmath.c — accuracy of ops_expf, ops_sigmoidf and ops_tanhf (ops_fastmath.h)
 * against libm in double, on a dense sweep of the input range the ops use, plus the
 * edge cases (clamping, -inf, large arguments).  A failure prints the worst input,
 * the expected value and the value obtained. */
#include <math.h>
#include <stdio.h>

#include "kernels/ops_fastmath.h"

static int failures = 0;

static void report(const char *what, double worst, float at, double want, float got, double tol) {
    int ok = worst <= tol;
    printf("%-4s %-28s worst rel err %.2e (tolerance %.0e) at x = %.9g: expected %.9g, got %.9g\n", ok ? "ok" : "FAIL",
           what, worst, tol, at, want, got);
    if (!ok) failures++;
}

int main(void) {
    /* exp on [-87, 88]: every 2^-10 step plus a denser sweep near 0 */
    double worst = 0, want_w = 0;
    float at = 0, got_w = 0;
    for (double x = -87.0; x <= 88.0; x += 1.0 / 1024) {
        float xf = (float)x, y = ops_expf(xf);
        double want = exp((double)xf), rel = fabs(y - want) / want;
        if (rel > worst) worst = rel, at = xf, want_w = want, got_w = y;
    }
    for (float x = -1.0f; x <= 1.0f; x += 1.0f / 65536) {
        float y = ops_expf(x);
        double want = exp((double)x), rel = fabs(y - want) / want;
        if (rel > worst) worst = rel, at = x, want_w = want, got_w = y;
    }
    /* 2 ulp = 2.4e-7 relative: the Cephes polynomial's bound plus the final scaling */
    report("ops_expf on [-87, 88]", worst, at, want_w, got_w, 3e-7);

    /* sigmoid over the range where it is not 0 or 1 in float */
    worst = 0;
    for (double x = -80.0; x <= 20.0; x += 1.0 / 512) {
        float xf = (float)x, y = ops_sigmoidf(xf);
        double want = 1.0 / (1.0 + exp(-(double)xf)), rel = fabs(y - want) / want;
        if (rel > worst) worst = rel, at = xf, want_w = want, got_w = y;
    }
    report("ops_sigmoidf on [-80, 20]", worst, at, want_w, got_w, 5e-7);

    /* tanh: a sweep across the polynomial / exp switch at 0.625 and into saturation
     * (|x| > 9: tanh = 1 in float), and a dense one near 0 where the polynomial works */
    worst = 0;
    for (double x = -20.0; x <= 20.0; x += 1.0 / 4096) {
        float xf = (float)x, y = ops_tanhf(xf);
        double want = tanh((double)xf), rel = xf == 0 ? fabs(y) : fabs(y - want) / fabs(want);
        if (rel > worst) worst = rel, at = xf, want_w = want, got_w = y;
    }
    for (float x = -1e-3f; x <= 1e-3f; x += 1e-3f / 65536) {
        float y = ops_tanhf(x);
        double want = tanh((double)x), rel = x == 0 ? fabs(y) : fabs(y - want) / fabs(want);
        if (rel > worst) worst = rel, at = x, want_w = want, got_w = y;
    }
    report("ops_tanhf on [-20, 20]", worst, at, want_w, got_w, 3e-7);

    /* edges: exp(0) exact, clamping gives finite values, -inf gives ~0, sigmoid saturates */
    struct {
        const char *what;
        float got;
        int ok;
    } e[] = {
        {"exp(0) == 1", ops_expf(0.0f), ops_expf(0.0f) == 1.0f},
        {"exp(-inf) < 1e-37", ops_expf(-INFINITY), ops_expf(-INFINITY) >= 0 && ops_expf(-INFINITY) < 1e-37f},
        {"exp(1000) finite", ops_expf(1000.0f), isfinite(ops_expf(1000.0f)) && ops_expf(1000.0f) > 1e38f},
        {"sigmoid(100) == 1", ops_sigmoidf(100.0f), ops_sigmoidf(100.0f) == 1.0f},
        {"sigmoid(-200) ~ 0", ops_sigmoidf(-200.0f), ops_sigmoidf(-200.0f) >= 0 && ops_sigmoidf(-200.0f) < 1e-37f},
        {"tanh(0) == 0", ops_tanhf(0.0f), ops_tanhf(0.0f) == 0.0f},
        {"tanh(1000) == 1", ops_tanhf(1000.0f), ops_tanhf(1000.0f) == 1.0f},
        {"tanh(-inf) == -1", ops_tanhf(-INFINITY), ops_tanhf(-INFINITY) == -1.0f},
        {"tanh(-x) == -tanh(x)", ops_tanhf(-0.7f), ops_tanhf(-0.7f) == -ops_tanhf(0.7f)},
        {"tanh(-0) is -0", ops_tanhf(-0.0f), ops_tanhf(-0.0f) == 0.0f && signbit(ops_tanhf(-0.0f))},
        {"tanh(NaN) is NaN", ops_tanhf(NAN), isnan(ops_tanhf(NAN))},
        {"tanh(denormal) == x", ops_tanhf(1e-40f), ops_tanhf(1e-40f) == 1e-40f},
        {"tanh(-9.5) == -1", ops_tanhf(-9.5f), ops_tanhf(-9.5f) == -1.0f},
    };
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
        printf("%-4s %-28s got %.9g\n", e[i].ok ? "ok" : "FAIL", e[i].what, e[i].got);
        if (!e[i].ok) failures++;
    }
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all fastmath checks passed\n");
    return 0;
}
