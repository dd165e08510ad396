#!/usr/bin/env python3
"""SFT sequences/s and peak RSS: cherry's bin/sft against TRL's SFTTrainer, for
tests/bench/peers.sh (alternating runs, ratios).

  bench_trl_sft.py --side trl|cherry --model DIR --data DIR [--dtype fp32|bf16] [--bin bin]

The data is sft.jsonl written by bench_trl_dpo.py --write-data: chats (system, user,
assistant) rendered by the model's own chat template on both sides (TRL:
apply_chat_template; cherry: --template auto, the tokenizer_config.json template), every
chat the same number of tokens, so no batch has padding; both sides print the tokens
per sequence their forward passes saw.  The same work as in bench_trl_dpo.py: full
fine-tuning of every weight, the same precision (--dtype fp32: TRL's bf16=True default
set False, cherry without --mixed-precision; --dtype bf16: TRL's bf16=True, autocast,
against cherry's --mixed-precision bf16; fp32 weights either way), gradient
checkpointing off (TRL's default on), dropout off, packing off, the same batch size,
max length, lr (TRL's SFT default 2e-5), linear schedule, no warm-up, no weight decay,
clipping at 1, one epoch, 2 threads.  Timed: every optimizer step (TRL: on_step_begin
.. on_step_end; cherry: num_tokens / tokens_per_s of each log record); not timed:
start-up, model load, tokenization, the final save.  Prints one line (work sft, or
sft-bf16 with --dtype bf16):
  RESULT <cherry|trl> <work> <model> B=<sequences per step> seqs_per_s=<x> rss_mib=<m> tokens_per_seq=<t> ..."""
import argparse, os, resource, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_trl_dpo import StepTimer, TokenCounter, cherry_log_steps, cherry_precision, cherry_run, load_model, \
    model_name, rss_mib, set_threads, work_name  # noqa: E402


def trl_sft(a):
    set_threads(a.threads)
    import torch

    torch.set_num_threads(a.threads)
    import trl
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    model = load_model(a.model)
    tok = AutoTokenizer.from_pretrained(a.model)
    ds = load_dataset("json", data_files=os.path.join(a.data, "sft.jsonl"), split="train")
    with tempfile.TemporaryDirectory() as out:
        cfg = SFTConfig(output_dir=out, per_device_train_batch_size=a.batch_size, num_train_epochs=1,
                        learning_rate=a.lr, max_length=a.max_length, packing=False, bf16=a.dtype == "bf16", fp16=False,
                        gradient_checkpointing=False, use_cpu=True, report_to="none", save_strategy="no",
                        logging_strategy="no", dataloader_num_workers=0, seed=1, lr_scheduler_type="linear",
                        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0)
        timer = StepTimer()
        tr = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok, callbacks=[timer])
        # the precision the row claims: accelerate's mixed_precision is what turns autocast on
        want_mp = "bf16" if a.dtype == "bf16" else "no"
        assert str(tr.accelerator.mixed_precision) == want_mp, \
            f"TRL runs mixed_precision={tr.accelerator.mixed_precision}, the row is {a.dtype}"
        assert all(not isinstance(x, torch.nn.Dropout) or x.p == 0 for x in tr.model.modules()), "dropout left on"
        count = TokenCounter(tr.model)
        count.on = True
        tr.train()
    n = len(ds)
    print(f"RESULT trl {work_name('sft', a.dtype)} {model_name(a.model)} B={a.batch_size} seqs_per_s={n / timer.total:.3f} "
          f"rss_mib={rss_mib(resource.RUSAGE_SELF):.0f} tokens_per_seq={count.positions / count.rows:.1f} "
          f"real_tokens_per_seq={count.real / count.rows:.1f} steps={timer.steps} steps_s={timer.total:.2f} "
          f"(trl {trl.__version__}, torch {torch.__version__}, {a.dtype}, {a.threads} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')})", flush=True)


def cherry_sft(a):
    data = os.path.join(a.data, "sft.jsonl")
    with open(data) as f:
        n = sum(1 for _ in f)
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.jsonl")
        cherry_run([os.path.join(a.bin, "sft"), "--no-progress", "-m", a.model, "-o", os.path.join(tmp, "out"),
                    "--epochs", "1", "--batch-size", str(a.batch_size), "--max-length", str(a.max_length), "--lr",
                    str(a.lr), "--save-every", "0", "--threads", str(a.threads), "--log", log] + cherry_precision(a.dtype) + [data])
        secs, tokens, steps = cherry_log_steps(log)
    print(f"RESULT cherry {work_name('sft', a.dtype)} {model_name(a.model)} B={a.batch_size} seqs_per_s={n / secs:.3f} "
          f"rss_mib={rss_mib(resource.RUSAGE_CHILDREN):.0f} tokens_per_seq={tokens / n:.1f} "
          f"real_tokens_per_seq={tokens / n:.1f} steps={steps} steps_s={secs:.2f} ({a.dtype}, {a.threads} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'passive, cherry default')})", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", choices=["cherry", "trl"], required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: mixed precision on both sides (TRL bf16=True, cherry --mixed-precision bf16)")
    a = ap.parse_args()
    (trl_sft if a.side == "trl" else cherry_sft)(a)


if __name__ == "__main__":
    main()
