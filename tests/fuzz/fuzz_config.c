/* fuzz_config.c — config.json (model_config_load: families, sizes, GQA, RoPE,
 * classifier heads, token ids) on arbitrary files. */
#include "fuzz.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write("config.json", data, size);
    ModelConfig c;
    Error e;
    model_config_load(&c, p, &e);
    return 0;
}
