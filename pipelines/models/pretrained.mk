# pipelines/models/pretrained.mk — pipeline settings for a pretrained MODEL= that has no
# preset of its own (pipelines/models/NAME.mk), picked by the model's size.
#
# The tiny default model is trained from scratch with large learning rates (3e-3 SFT,
# 5e-4 DPO) and hundreds of steps; a pretrained model wants what TRL's defaults
# assume instead: SFT at 2e-5 (SFTConfig), a reward model at 1e-5, DPO at 5e-6 with
# beta 0.1 (DPOConfig's 1e-6 moves too little in the few dozen steps a CPU run can
# afford), small batches, and short runs, because every token costs about
# 6 x parameters flops to train (2 x to sample): a 135M model trains at ~40 tokens/s
# on 2 cores, so the tiny model's 600 SFT steps of 32 rows would take hours.
#
# Measured with SmolLM2-135M-Instruct ("small"), 2 shared cores: make pipeline-dpo 11 min,
# gold 0.562 -> 0.984 (README).  The PPO and GRPO settings were run as a smoke test
# only (ALIGN_STEPS=3: ppo + grpo pipelines with their evals in 7 min), not tuned.
#
# Size = 12 L C^2 + V C from config.json (the transformer's weights, embeddings once);
# classes: up to 250M parameters, up to 1.5B, above.  Everything is set with ?=, so
# the command line (or a NAME.mk preset included instead of this file) wins.

MODEL_CFG      := $(MODEL)/config.json
cfg_int         = $(shell sed -n 's/.*"$(1)": *\([0-9][0-9]*\).*/\1/p' $(MODEL_CFG) 2>/dev/null | head -n 1)
MODEL_PARAMS_M := $(shell awk -v l='$(call cfg_int,num_hidden_layers)$(call cfg_int,n_layer)' \
                    -v c='$(call cfg_int,hidden_size)$(call cfg_int,n_embd)' -v v='$(call cfg_int,vocab_size)' \
                    'BEGIN { if (l == "" || c == "") print 0; else printf "%d", (12 * l * c * c + v * c) / 1e6 }')
MODEL_CLASS    := $(shell awk -v p='$(MODEL_PARAMS_M)' 'BEGIN { print (p <= 250 ? "small" : p <= 1500 ? "medium" : "large") }')

RUNS        ?= runs/$(MODEL_NAME)
TEMPLATE    ?= auto
SFT_N       ?= 512
ROLL_PROMPTS ?= 32
EVAL_PROMPTS ?= 32
EVAL_SAMPLES ?= 2
NUM_CAND    ?= 4

ifeq ($(MODEL_CLASS),small)
SFT_STEPS   ?= 40
ALIGN_STEPS ?= 24
PT_BATCH    := --batch-size 8
else ifeq ($(MODEL_CLASS),medium)
SFT_STEPS   ?= 24
ALIGN_STEPS ?= 16
PT_BATCH    := --batch-size 4 --grad-accum 2
else
SFT_STEPS   ?= 12
ALIGN_STEPS ?= 8
PT_BATCH    := --batch-size 2 --grad-accum 4
endif

SFT_FLAGS  ?= --max-steps $(SFT_STEPS) $(PT_BATCH) --lr 2e-5 --warmup 0.1 --lr-scheduler cosine --weight-decay 0.0 \
              --max-length 128
RM_FLAGS   ?= --epochs 1 --max-steps $(ALIGN_STEPS) $(PT_BATCH) --lr 1e-5 --max-length 128
DPO_FLAGS  ?= --beta 0.1 --lr 5e-6 --max-steps $(ALIGN_STEPS) $(PT_BATCH) --max-length 128
PPO_FLAGS  ?= --max-steps $(ALIGN_STEPS) $(PT_BATCH) --num-generations 2 --lr 2e-6 --kl-coef 0.05 --num-ppo-epochs 1
GRPO_FLAGS ?= --max-steps $(ALIGN_STEPS) --batch-size 4 --num-generations 4 --lr 2e-6 --beta 0.04
RLOO_FLAGS ?= --max-steps $(ALIGN_STEPS) --batch-size 4 --num-generations 4 --lr 2e-6 --kl-coef 0.05
COH_SFT_FLAGS ?= --max-steps $(SFT_STEPS) $(PT_BATCH) --lr 2e-5 --warmup 0.1 --lr-scheduler cosine --max-length 160
RSO_ROLL_FLAGS ?= --rso-beta 0.5 --num-samples 4 --num-select 2 --temperature 1.0
RSO_FLAGS  ?= --loss-type hinge --beta 1.0 --lr 5e-6 --max-steps $(ALIGN_STEPS) $(PT_BATCH) --max-length 128
