# pipelines/align.mk — the alignment stages that swap in after runs/base/.
# Each writes runs/NAME/policy/ (an HF model directory) and runs/NAME/train.log.jsonl.
# The hyper-parameters of each stage are in one variable (DPO_FLAGS, PPO_FLAGS, ...)
# that a user can override on the command line; the defaults are the measured ones
# (see tests/t_pipeline_fast.sh for the gold scores they reach).

ALIGN_COMMON = $(Q) --threads $(THREADS) --seed $(SEED) --save-every 0 --template $(TEMPLATE)

# DPO on the annotated pairs with precomputed reference log-probs.  RPO's NLL term on
# the chosen answer (--rpo-alpha 1, Pang et al. 2024) keeps the tiny model from
# unlearning the words while it learns the preferred closing (measured: without it
# the gold score fell on the fast variant; with it it rose by 0.2).
DPO_FLAGS ?= --beta 0.1 --rpo-alpha 1.0 --lr 5e-4 --max-steps $(ALIGN_STEPS) --batch-size 16
$(RUNS)/dpo/policy/config.json: $(BASE)/sft/config.json $(BASE)/pairs-ref.jsonl | $(PIPE_TOOLS)
	@mkdir -p $(RUNS)/dpo
	$(BIN)/dpo -m $(BASE)/sft -o $(RUNS)/dpo/policy $(BASE)/pairs-ref.jsonl $(ALIGN_COMMON) $(DPO_FLAGS) \
	  --log $(RUNS)/dpo/train.log.jsonl

# PPO against the reward model
PPO_FLAGS ?= --max-steps $(ALIGN_STEPS) --batch-size 16 --num-generations 2 --lr 5e-4 --kl-coef 0.1 --num-ppo-epochs 1
$(RUNS)/ppo/policy/config.json: $(BASE)/sft/config.json $(BASE)/rm/config.json $(BASE)/prompts.jsonl | $(PIPE_TOOLS)
	@mkdir -p $(RUNS)/ppo
	$(BIN)/ppo --algo ppo -m $(BASE)/sft --reward-model $(BASE)/rm -o $(RUNS)/ppo/policy $(BASE)/prompts.jsonl \
	  $(ALIGN_COMMON) --max-new-tokens $(MAX_NEW) $(PPO_FLAGS) --log $(RUNS)/ppo/train.log.jsonl

# GRPO with the task's reward program (a verifiable reward)
GRPO_FLAGS ?= --max-steps $(ALIGN_STEPS) --batch-size 8 --num-generations 4 --lr 5e-4 --beta 0.04
$(RUNS)/grpo/policy/config.json: $(BASE)/sft/config.json $(BASE)/rm/config.json $(BASE)/prompts.jsonl | $(PIPE_TOOLS)
	@mkdir -p $(RUNS)/grpo
	$(BIN)/ppo --algo grpo -m $(BASE)/sft --reward-cmd "$(BIN)/task-reward" -o $(RUNS)/grpo/policy \
	  $(BASE)/prompts.jsonl $(ALIGN_COMMON) --max-new-tokens $(MAX_NEW) $(GRPO_FLAGS) \
	  --log $(RUNS)/grpo/train.log.jsonl

# RLOO against the reward model
RLOO_FLAGS ?= --max-steps $(ALIGN_STEPS) --batch-size 8 --num-generations 4 --lr 5e-4 --kl-coef 0.05
$(RUNS)/rloo/policy/config.json: $(BASE)/sft/config.json $(BASE)/rm/config.json $(BASE)/prompts.jsonl | $(PIPE_TOOLS)
	@mkdir -p $(RUNS)/rloo
	$(BIN)/ppo --algo rloo -m $(BASE)/sft --reward-model $(BASE)/rm -o $(RUNS)/rloo/policy $(BASE)/prompts.jsonl \
	  $(ALIGN_COMMON) --max-new-tokens $(MAX_NEW) $(RLOO_FLAGS) --log $(RUNS)/rloo/train.log.jsonl

# Chain of Hindsight: pairs -> feedback-annotated sequences -> SFT; eval samples with the helpful prefix
COH_FLAGS ?= --user-prefix ""
COH_ORDER ?= --order both
COH_STEPS ?= $(if $(filter 1,$(FAST)),200,400)
COH_SFT_FLAGS ?= --max-steps $(COH_STEPS) --batch-size 16 --lr 2e-3 --warmup 20 --lr-scheduler cosine --max-length 96
COH_PAIRS ?= $(BASE)/pairs.jsonl
COH_PREFIX = $(shell $(BIN)/coh-format $(COH_FLAGS) --inference-prefix)
$(RUNS)/coh/coh.jsonl: $(COH_PAIRS) | $(PIPE_TOOLS)
	@mkdir -p $(RUNS)/coh
	$(BIN)/coh-format $(COH_FLAGS) $(COH_ORDER) --seed $(SEED) -o $@ $<
$(RUNS)/coh/policy/config.json: $(BASE)/sft/config.json $(RUNS)/coh/coh.jsonl | $(PIPE_TOOLS)
	$(BIN)/sft -m $(BASE)/sft -o $(RUNS)/coh/policy $(RUNS)/coh/coh.jsonl $(Q) --threads $(THREADS) --seed $(SEED) \
	  --save-every 0 $(COH_SFT_FLAGS) --log $(RUNS)/coh/train.log.jsonl

# RSO: statistical rejection sampling from the SFT model scored by the reward model, then DPO with the hinge loss
RSO_ROLL_FLAGS ?= --rso-beta 0.5 --num-samples 8 --num-select 4 --temperature 1.0
RSO_FLAGS ?= --loss-type hinge --beta 1.0 --rpo-alpha 1.0 --lr 5e-4 --max-steps $(ALIGN_STEPS) --batch-size 16
$(RUNS)/rso/pairs.jsonl: $(BASE)/sft/config.json $(BASE)/rm/config.json $(BASE)/prompts.jsonl | $(PIPE_TOOLS)
	@mkdir -p $(RUNS)/rso
	$(BIN)/rollout -m $(BASE)/sft --reward-model $(BASE)/rm --pairs rso $(RSO_ROLL_FLAGS) \
	  --max-new-tokens $(MAX_NEW) --seed $(SEED) --threads $(THREADS) $(Q) \
	  --template $(TEMPLATE) -o $@ $(BASE)/prompts.jsonl
$(RUNS)/rso/policy/config.json: $(BASE)/sft/config.json $(RUNS)/rso/pairs.jsonl | $(PIPE_TOOLS)
	$(BIN)/dpo -m $(BASE)/sft -o $(RUNS)/rso/policy $(RUNS)/rso/pairs.jsonl $(ALIGN_COMMON) $(RSO_FLAGS) \
	  --log $(RUNS)/rso/train.log.jsonl
