# fuzz.mk — libFuzzer harnesses for every parser (tests/fuzz/fuzz_*.c), included by
# the Makefile.
#
#   make fuzz                   each harness for FUZZ_SECONDS (default 60) on its corpus;
#                               new inputs kept in $(O)/fuzz/corpus/, crashes in
#                               $(O)/fuzz/crashes/ (how to minimise one: tests/fuzz/README)
#   make fuzz FUZZ_SECONDS=600  longer
#   make check                  replays tests/fuzz/regress/ and runs each harness for
#                               FUZZ_CHECK_SECONDS (default 2) (tests/t_fuzz.sh)
#
# The harnesses and a copy of the library are built with clang,
# -fsanitize=fuzzer,address,undefined (libFuzzer finds inputs, ASan/UBSan turn a bad
# read or undefined behaviour into a crash).
FUZZ_CC            ?= clang
FUZZ_SECONDS       ?= 60
FUZZ_CHECK_SECONDS ?= 2
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -O1 -g -std=gnu11 -Wno-pass-failed -fopenmp -Icommon -I$(BLAS_INC) -Itests/fuzz $(FUZZ_SAN) -MMD -MP
FUZZ_SRC    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS   := $(FUZZ_SRC:tests/fuzz/%.c=$(O)/fuzz/%)
FUZZ_OBJ    := $(LIB_SRC:%.c=$(O)/fuzz/obj/%.o)
FUZZ_LIB    := $(O)/fuzz/libcherry.a
export FUZZ_CHECK_SECONDS

# clang, its libFuzzer runtime and libomp: installed by the deps step when fuzzing is
# first asked for (make check, make fuzz), not for a plain build.  The runtimes live
# under clang's versioned resource directory: ask clang where.
FUZZ_PKGS  := clang libclang-rt-dev libomp-dev
FUZZ_RES   := $(shell $(FUZZ_CC) -print-resource-dir 2>/dev/null)
FUZZ_DEPS  := /usr/bin/clang $(if $(FUZZ_RES),$(FUZZ_RES)/lib/linux/libclang_rt.fuzzer-x86_64.a \
                $(FUZZ_RES)/include/omp.h,libclang_rt.fuzzer-x86_64.a)
FUZZ_STAMP := $(O)/.deps-ok-fuzz
ifneq ($(DEPS_STAMP),$(FUZZ_STAMP)) # in the sub-make below, the Makefile's deps rule makes it
$(FUZZ_STAMP): | $(DEPS_STAMP)
	@$(MAKE) --no-print-directory DEPS_STAMP=$@ DEP_FILES="$(FUZZ_DEPS)" DEB_PKGS="$(DEB_PKGS) $(FUZZ_PKGS)" $@
endif

$(O)/fuzz/obj/%.o: %.c | $(FUZZ_STAMP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_LIB): $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(O)/fuzz/fuzz_%: $(O)/fuzz/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_LIB) $(LDLIBS) -o $@

.PHONY: fuzz
fuzz: $(FUZZ_BINS)
	@O=$(O) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_KEEP=$(O)/fuzz sh tests/t_fuzz.sh $(FUZZ_BINS)
