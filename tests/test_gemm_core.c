/* test_gemm_core.c — OpenBLAS's kernel choice (gemm.c's start-up fix).
 *
 * Debian's OpenBLAS 0.3.21 fell back to its SSE3 "Prescott" kernels on an AVX-512
 * Xeon it did not know (8x slower products); gemm.c then sets OPENBLAS_CORETYPE and
 * re-executes.  Checked here: the mapping (generic family + CPU features -> forced
 * family; a modern family is left alone), that in this very process OpenBLAS does
 * not run a generic family on a CPU with AVX2 (whatever it chose by itself, or what
 * the fix forced), and that a user's own OPENBLAS_CORETYPE wins (a child run with
 * OPENBLAS_CORETYPE=Prescott reports Prescott). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "check.h"
#include "kernels/gemm.h"

static int is(const char *a, const char *b) {
    return a && b && strcmp(a, b) == 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--corename") == 0) { /* the child of the last check */
        printf("%s\n", openblas_get_corename());
        return 0;
    }
    CHECK(is(gemm_blas_core_for("Prescott", 1, 1), "SkylakeX"), "Prescott on AVX-512 -> SkylakeX");
    CHECK(is(gemm_blas_core_for("prescott", 0, 1), "Haswell"), "Prescott on AVX2 only -> Haswell");
    CHECK(gemm_blas_core_for("Prescott", 0, 0) == NULL, "Prescott on a CPU without AVX2 stays");
    CHECK(is(gemm_blas_core_for("Sandybridge", 1, 1), "SkylakeX"), "Sandybridge on AVX-512 -> SkylakeX");
    CHECK(is(gemm_blas_core_for("Nehalem", 0, 1), "Haswell"), "Nehalem on AVX2 -> Haswell");
    const char *modern[] = {"Haswell", "SkylakeX", "Cooperlake", "Zen", "SapphireRapids"};
    for (int i = 0; i < 5; i++)
        CHECK(gemm_blas_core_for(modern[i], 1, 1) == NULL, "%s is left as OpenBLAS chose it", modern[i]);

    const char *core = openblas_get_corename();
    const char *env = getenv("OPENBLAS_CORETYPE");
    printf("OpenBLAS kernels in this process: %s (OPENBLAS_CORETYPE=%s)\n", core, env ? env : "(unset)");
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl");
    if (!env || !gemm_blas_core_for(env, avx512, avx2))
        CHECK(gemm_blas_core_for(core, avx512, avx2) == NULL, "OpenBLAS runs generic kernels (%s) on a CPU with%s",
              core, avx512 ? " AVX-512" : avx2 ? " AVX2" : "out AVX2");

    char cmd[4096];
    snprintf(cmd, sizeof cmd, "OPENBLAS_CORETYPE=Prescott '%s' --corename", argv[0]);
    FILE *p = popen(cmd, "r");
    char line[128] = "";
    CHECK(p && fgets(line, sizeof line, p), "could not run %s", cmd);
    if (p) pclose(p);
    line[strcspn(line, "\n")] = 0;
    CHECK(strcasecmp(line, "Prescott") == 0, "a user's OPENBLAS_CORETYPE=Prescott was overridden: %s", line);
    return check_summary("test_gemm_core");
}
