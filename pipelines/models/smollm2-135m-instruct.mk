# pipelines/models/smollm2-135m-instruct.mk — `make pipeline-dpo MODEL=models/smollm2-135m-instruct`
# (make models/smollm2-135m-instruct fetches it).  SmolLM2-135M-Instruct is a 135M
# chat model with a ChatML template (picked by --template auto from its
# tokenizer_config.json); its size class in pretrained.mk ("small") fits it, so this
# preset only names its run directory and then takes those settings.  Measured on
# 2 shared cores: see the README ("Real models").
RUNS ?= runs/smollm2-135m-instruct
include pipelines/models/pretrained.mk
