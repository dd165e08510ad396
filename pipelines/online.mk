# pipelines/online.mk — the online loop: serve the policy, collect thumbs and rankings
# from simulated users over HTTP, learn from them, hot-reload, repeat.
#
#   make pipeline-online ROUNDS=3            (runs/online/report.md, gold.png)
#   ALIGN=kto make pipeline-online           the policy update of every round: dpo (default,
#                                            iterative DPO), kto, ppo or grpo
#   ONLINE_ALIGNS="dpo kto ppo"              one per round (cycled)
#   ONLINE_NAME=online-kto                   run directory under runs/ (default online)
#   FAST=1                                   the small variant tests/t_pipeline_online.sh runs
#   CLIENTS=1                                simulated users one at a time (the default): the
#                                            logs, and so the training data, come out in the
#                                            same order every run; more is faster
#
# It reuses runs/base/ (SFT model, reward model, held-out prompts) of the other
# pipelines; the loop itself is pipelines/online.sh (one serve for all rounds).
ROUNDS  ?= 3
ONLINE_ALIGNS ?= $(ALIGN)
ONLINE_NAME   ?= online
ifeq ($(FAST),1)
ONLINE_PROMPTS ?= 64
else
ONLINE_PROMPTS ?= 128
endif
ONLINE_N       ?= 4
USERS          ?= 3
CLIENTS        ?= 1
ONLINE_STEPS   ?= $(if $(filter 1,$(FAST)),40,80)
ONLINE_DPO_FLAGS  ?= --beta 0.1 --rpo-alpha 1.0 --lr 5e-4 --max-steps $(ONLINE_STEPS) --batch-size 16
ONLINE_KTO_FLAGS  ?= --beta 0.1 --lr 2e-4 --max-steps $(ONLINE_STEPS) --batch-size 16
ONLINE_PPO_FLAGS  ?= --max-steps $(ONLINE_STEPS) --batch-size 16 --num-generations 2 --lr 5e-4 --kl-coef 0.1 --num-ppo-epochs 1
ONLINE_GRPO_FLAGS ?= --max-steps $(ONLINE_STEPS) --batch-size 8 --num-generations 4 --lr 5e-4 --beta 0.04
export ONLINE_DPO_FLAGS ONLINE_KTO_FLAGS ONLINE_PPO_FLAGS ONLINE_GRPO_FLAGS

# Phony: the script itself skips the rounds already finished, so ROUNDS=5 after a
# ROUNDS=3 run adds two rounds.
.PHONY: pipeline-online
pipeline-online: $(BASE)/sft/config.json $(BASE)/rm/config.json $(BASE)/eval-prompts.jsonl | $(PIPE_TOOLS)
	BIN=$(BIN) BASE=$(BASE) OUT=$(RUNS)/$(ONLINE_NAME) ROUNDS=$(ROUNDS) ALIGNS="$(ONLINE_ALIGNS)" SEED=$(SEED) THREADS=$(THREADS) \
	  TEMPLATE=$(TEMPLATE) ONLINE_PROMPTS=$(ONLINE_PROMPTS) ONLINE_N=$(ONLINE_N) MAX_NEW=$(MAX_NEW) NOISE=$(NOISE) \
	  USERS=$(USERS) CLIENTS=$(CLIENTS) MAX_WORDS=$(MAX_WORDS) EVAL_SAMPLES=$(EVAL_SAMPLES) sh pipelines/online.sh
