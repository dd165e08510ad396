/* test_util.c — base/util.h's growing arrays (xgrow): the capacity doubles from its
 * first size until the need fits, stays when it already does, and the contents
 * survive the move. */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "check.h"

int main(void) {
    size_t cap = 0;
    int *v = xgrow(NULL, &cap, 1, 16, sizeof *v);
    CHECK(v && cap == 16, "first growth: cap %zu, expected 16", cap);
    for (int i = 0; i < 16; i++) v[i] = i * 7;
    int *same = xgrow(v, &cap, 16, 16, sizeof *v);
    CHECK(same == v && cap == 16, "a need that fits: moved or resized (cap %zu)", cap);
    v = xgrow(v, &cap, 17, 16, sizeof *v);
    CHECK(cap == 32, "17 of 16: cap %zu, expected 32", cap);
    v = xgrow(v, &cap, 100, 16, sizeof *v);
    CHECK(cap == 128, "100 of 32: cap %zu, expected 128 (doubling, not the need)", cap);
    v[99] = -1; /* the whole of the new capacity is there (the sanitizer build checks) */
    int kept = 1;
    for (int i = 0; i < 16; i++) kept &= v[i] == i * 7;
    CHECK(kept, "contents lost across growth");
    free(v);

    size_t bcap = 0;
    char *b = xgrow(NULL, &bcap, 5000, 4096, 1);
    CHECK(bcap == 8192, "bytes: cap %zu, expected 8192", bcap);
    memset(b, 'x', bcap);
    free(b);
    return check_summary("test_util");
}
