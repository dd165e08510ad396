# pipelines/common.mk — the stages every pipeline shares (included by the Makefile).
#
#   make pipeline-dpo            SFT -> rollouts -> simulated Argilla ranking -> rank2pairs
#                                -> reference log-probs -> DPO -> eval   (runs/dpo/report.md)
#   make pipeline-ppo | pipeline-grpo | pipeline-rloo | pipeline-coh | pipeline-rso
#   ALIGN=ppo make pipeline      swap only the alignment stage; runs/base/ is reused
#   MODEL=dir                    start SFT from this HF model instead of a fresh tiny one
#   DATA=dir                     use dir/sft.jsonl, dir/prompts.jsonl, dir/eval-prompts.jsonl
#   FAST=1                       the small variant `make check` runs (in runs/fast/)
#   ARGILLA=1                    annotators write an Argilla 1.x export instead of 2.x
#   ANNOTATORS=3 NOISE=0.1       simulated annotators
#   NUM_CAND=8                   candidates per prompt the annotators rank
#   SEED=1 THREADS=2 RUNS=runs   seed of every stage, threads, where the runs go
#   EVAL_PROMPTS, EVAL_SAMPLES   held-out prompts and samples per prompt of the report
#   SFT_FLAGS, RM_FLAGS, DPO_FLAGS, PPO_FLAGS, ...  one stage's hyper-parameters
#                                (here and in pipelines/align.mk)
#   MODEL_PRESET=file.mk         settings for MODEL= (default pipelines/models/NAME.mk)
#
# Measured (gold score on held-out prompts, SFT -> aligned; SEED=1, 2 cores): full
# dpo 0.358 -> 0.916, ppo -> 0.731, grpo -> 0.878, rloo -> 0.807, coh -> 0.852,
# rso -> 0.711; `make pipeline-dpo` from a clean tree (build included) in 41 s.
# tests/t_pipeline_fast.sh runs the FAST=1 variant of all six and asserts the gains.
#
# Every stage is a file target with real prerequisites, so a re-run resumes after
# the last finished stage.  A model stage's target is its config.json: model
# directories are renamed into place whole, so the file exists only when the stage
# finished.

# Settings for a real (pretrained) MODEL: pipelines/models/NAME.mk, NAME being the
# last path component of MODEL (MODEL=models/smollm2-135m-instruct reads
# pipelines/models/smollm2-135m-instruct.mk), else pipelines/models/pretrained.mk,
# which picks them by the model's size.  A preset sets, with ?=, what the tiny
# model's defaults below would otherwise give (learning rates, batch sizes, steps,
# sample counts, template, RUNS), so anything on the command line still wins.
MODEL_NAME   := $(notdir $(patsubst %/,%,$(MODEL)))
MODEL_PRESET ?= $(if $(MODEL),$(firstword $(wildcard pipelines/models/$(MODEL_NAME).mk) pipelines/models/pretrained.mk))
ifneq ($(MODEL_PRESET),)
include $(MODEL_PRESET)
endif

# A run directory holds one configuration (runs/base/ is reused by every pipeline
# run there), so the fast variant gets its own; give MODEL=/DATA= runs their own RUNS=.
FAST       ?= 0
RUNS       ?= $(if $(filter 1,$(FAST)),runs/fast,runs)
BASE       := $(RUNS)/base
ALIGN      ?= dpo
THREADS    ?= 2
SEED       ?= 1
ANNOTATORS ?= 3
NOISE      ?= 0.1
ARGILLA    ?= 2
MODEL      ?=
DATA       ?=
TEMPLATE   ?= plain
MAX_WORDS  ?= 2
Q          := --no-progress

ifeq ($(FAST),1)
SFT_N        ?= 2000
SFT_STEPS    ?= 500
ROLL_PROMPTS ?= 128
EVAL_PROMPTS ?= 64
ALIGN_STEPS  ?= 60
else
SFT_N        ?= 4000
SFT_STEPS    ?= 600
ROLL_PROMPTS ?= 256
EVAL_PROMPTS ?= 256
ALIGN_STEPS  ?= 120
endif
NUM_CAND    ?= 8
MAX_NEW     ?= 24

# the tiny default model: a Llama-family transformer on the task's tokenizer
INIT_FLAGS ?= --family llama --layers 2 --heads 4 --kv-heads 2 --width 64 --mlp-width 192 --context 128 \
              --tokenizer data/tokenizer.json --seed $(SEED)

PIPE_TOOLS := $(TOOLS) $(TOOL_ALIASES)

ifeq ($(MODEL),)
BASE_MODEL := $(BASE)/init
$(BASE)/init/config.json: | $(PIPE_TOOLS)
	@mkdir -p $(BASE)
	$(BIN)/init-model $(INIT_FLAGS) -o $(BASE)/init
else
BASE_MODEL := $(MODEL)
endif

ifeq ($(DATA),)
$(BASE)/sft.jsonl: | $(PIPE_TOOLS)
	@mkdir -p $(BASE)
	$(BIN)/task-gen --kind sft -n $(SFT_N) --max-words $(MAX_WORDS) --seed $(SEED) -o $@
$(BASE)/prompts.jsonl: | $(PIPE_TOOLS)
	@mkdir -p $(BASE)
	$(BIN)/task-gen --kind prompts --max-words $(MAX_WORDS) -n $(ROLL_PROMPTS) --seed $$(($(SEED) + 100)) -o $@
$(BASE)/eval-prompts.jsonl: | $(PIPE_TOOLS)
	@mkdir -p $(BASE)
	$(BIN)/task-gen --kind prompts --split eval --max-words $(MAX_WORDS) -n $(EVAL_PROMPTS) --seed $$(($(SEED) + 200)) -o $@
else
$(BASE)/%.jsonl: $(DATA)/%.jsonl
	@mkdir -p $(BASE)
	cp $< $@
endif

# 1. supervised fine-tuning
SFT_FLAGS ?= --max-steps $(SFT_STEPS) --batch-size 32 --lr 3e-3 --warmup 20 --lr-scheduler cosine --weight-decay 0.0 \
             --max-length 64
$(BASE)/sft/config.json: $(BASE_MODEL)/config.json $(BASE)/sft.jsonl | $(PIPE_TOOLS)
	$(BIN)/sft -m $(BASE_MODEL) -o $(BASE)/sft $(BASE)/sft.jsonl $(Q) --threads $(THREADS) --seed $(SEED) \
	  $(SFT_FLAGS) --save-every 0 --template $(TEMPLATE) --log $(BASE)/sft.log.jsonl

# 2. candidates for human ranking, in the Argilla record shape
$(BASE)/candidates.jsonl: $(BASE)/sft/config.json $(BASE)/prompts.jsonl | $(PIPE_TOOLS)
	$(BIN)/rollout -m $(BASE)/sft --format argilla --num-samples $(NUM_CAND) --temperature 1.0 \
	  --max-new-tokens $(MAX_NEW) --seed $(SEED) --threads $(THREADS) $(Q) --template $(TEMPLATE) \
	  -o $@ $(BASE)/prompts.jsonl

# 3. simulated annotators -> a real Argilla export
$(BASE)/argilla-export.jsonl: $(BASE)/candidates.jsonl | $(PIPE_TOOLS)
	$(BIN)/annotate --annotators $(ANNOTATORS) --noise $(NOISE) --argilla $(if $(filter 1,$(ARGILLA)),1,2) \
	  --seed $(SEED) -o $@ $<

# 4. the export to preference pairs, exactly as for a human export: the best against
#    the worst response by mean rank for DPO and CoH (the cleanest signal), every
#    ordered pair for the reward model (more comparisons)
$(BASE)/pairs.jsonl: $(BASE)/argilla-export.jsonl | $(PIPE_TOOLS)
	$(BIN)/rank2pairs --aggregate mean --pairs best-worst -o $@ $<
$(BASE)/pairs-all.jsonl: $(BASE)/argilla-export.jsonl | $(PIPE_TOOLS)
	$(BIN)/rank2pairs -q --aggregate mean --pairs all -o $@ $<

# 5. reference log-probs, computed once (dpo then holds no reference model)
$(BASE)/pairs-ref.jsonl: $(BASE)/sft/config.json $(BASE)/pairs.jsonl | $(PIPE_TOOLS)
	$(BIN)/logprobs -m $(BASE)/sft --threads $(THREADS) $(Q) --template $(TEMPLATE) -o $@ $(BASE)/pairs.jsonl

# 6. a reward model from the same pairs (reward-model score in every report; PPO/RLOO/RSO use it)
RM_FLAGS ?= --epochs 2 --batch-size 16 --lr 1e-3
$(BASE)/rm/config.json: $(BASE)/sft/config.json $(BASE)/pairs-all.jsonl | $(PIPE_TOOLS)
	$(BIN)/rm-train -m $(BASE)/sft -o $(BASE)/rm $(BASE)/pairs-all.jsonl $(Q) --threads $(THREADS) --seed $(SEED) \
	  $(RM_FLAGS) --save-every 0 --template $(TEMPLATE) --log $(BASE)/rm.log.jsonl

# the report of an alignment stage: runs/NAME/policy against runs/base/sft, with the
# same settings for every pipeline.  On the bundled task samples end at EOS or at a
# newline (its answers are one line); with DATA= they end at EOS only, so multi-line
# answers are judged whole.  Chain of Hindsight's answers always end at coh-format's
# "\n" marker, after which its model would go on with the next feedback phrase.
EVAL_STOP    ?= $(if $(DATA),,\n)
EVAL_SAMPLES ?= 4
EVAL_FLAGS   ?= --num-samples $(EVAL_SAMPLES) --temperature 1.0 --max-new-tokens $(MAX_NEW) --seed $(SEED) \
                --threads $(THREADS) $(if $(EVAL_STOP),--stop '$(EVAL_STOP)')
$(RUNS)/%/report.json: $(RUNS)/%/policy/config.json $(BASE)/sft/config.json $(BASE)/rm/config.json \
                       $(BASE)/eval-prompts.jsonl | $(PIPE_TOOLS)
	$(BIN)/cherry-eval -m $(RUNS)/$*/policy --sft $(BASE)/sft --reward-model $(BASE)/rm --name $* -o $(RUNS)/$* \
	  --log $(RUNS)/$*/train.log.jsonl --template $(TEMPLATE) $(EVAL_FLAGS) \
	  $(if $(filter coh,$*),--prompt-format "$(COH_PREFIX)" $(if $(EVAL_STOP),,--stop '\n')) $(BASE)/eval-prompts.jsonl
	@echo "report: $(RUNS)/$*/report.md"

ALIGNS := dpo ppo grpo rloo coh rso
.PHONY: pipeline pipelines $(addprefix pipeline-,$(ALIGNS))
pipeline: pipeline-$(ALIGN)
$(foreach a,$(ALIGNS),$(eval pipeline-$(a): $(RUNS)/$(a)/report.json ; @cat $(RUNS)/$(a)/report.md))
pipelines: $(addprefix pipeline-,$(ALIGNS))
