/* fixture.h — loading an oracle fixture model (tests/oracle/fixtures/NAME) for the C
 * tests that train through it: on failure the CHECK is counted and 0 returned, else
 * the model is loaded with gradients enabled.  Include after check.h. */
#ifndef CHERRY_TESTS_FIXTURE_H
#define CHERRY_TESTS_FIXTURE_H

#include <stdio.h>

#include "model/model.h"

static inline int fixture_load_grads(Model *m, const char *name) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/oracle/fixtures/%s", name);
    Error e;
    if (model_load(m, dir, &e)) {
        CHECK(0, "%s: %s", name, e.msg);
        return 0;
    }
    model_enable_grads(m);
    return 1;
}

#endif
