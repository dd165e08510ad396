#!/usr/bin/env python3
"""DPO pairs/s and peak RSS: cherry's bin/dpo against TRL's DPOTrainer, for
tests/bench/peers.sh (which runs the sides alternately and prints the ratios).

  bench_trl_dpo.py --write-data DIR [--pairs N --prompt P --completion C]
  bench_trl_dpo.py --side trl    --mode ref|precompute --model DIR --data DIR [--dtype fp32|bf16] [...]
  bench_trl_dpo.py --side cherry --mode ref|precompute --model DIR --data DIR [--dtype fp32|bf16] [--bin bin]

The same work on both sides:
  - the same model directory (SmolLM2-135M-Instruct, or any HF causal LM cherry loads),
    with fp32 weights, dropout off (TRL's disable_dropout, cherry has none), gradient
    checkpointing off (TRL 1.x defaults it on, which recomputes every forward: cherry
    does not);
  - the same precision: --dtype fp32 (the default) sets TRL's bf16=False (its configs
    default to True) and runs cherry without --mixed-precision; --dtype bf16 is TRL's
    own default, bf16=True (accelerate's mixed_precision "bf16": torch.autocast on the
    CPU, bf16 matrix products through oneDNN, fp32 weights, AdamW state and
    reductions), against cherry's --mixed-precision bf16 (the same split: gemm.h);
  - the same pairs: plain-text prompt/chosen/rejected (no chat template), every word
    one token with its leading space, so each row is PROMPT + COMPLETION tokens, the
    EOS both append included, and no batch has padding; both sides print the tokens
    their forward passes saw per pair;
  - the same batch size (pairs per step), max length, lr, beta (sigmoid loss), linear
    schedule without warm-up, no weight decay, clipping at 1, one epoch, 2 threads;
  - the reference: --mode ref is TRL's default (a frozen copy of the model, one no-grad
    forward per step) against cherry computing the reference log-probs of every pair
    once before the first step (its default without ref_* fields in the records);
    --mode precompute is TRL's precompute_ref_log_probs=True (one pass before
    training, no reference model kept) against the same cherry run;
  - the layout: cherry's default lays each pair's prompt out once (prefix sharing, a
    row of 193 tokens here), TRL a row per completion (2 x 128); --cherry-flags
    --no-prefix-sharing gives cherry TRL's layout.  Both count tokens_per_pair in TRL's
    layout (cherry's num_tokens does).
Timed, identically on both sides: the reference pass (TRL: _precompute_ref_logps;
cherry: the "reference log-probs ... computed in" line) plus every optimizer step
(TRL: on_step_begin .. on_step_end; cherry: num_tokens / tokens_per_s of each
record of its log).  Not timed: Python/torch start-up, model load, tokenization, the
final save.  Peak RSS is the whole process's (ru_maxrss), model load included.
Prints one line (work dpo-<mode>, or dpo-bf16-<mode> with --dtype bf16):
  RESULT <cherry|trl> <work> <model> B=<pairs per step> pairs_per_s=<x> rss_mib=<m> tokens_per_pair=<t> ..."""
import argparse, json, os, random, resource, subprocess, sys, tempfile, time

WORDS = ("red blue green gold fox cat dog bird tree moon sun sky rain snow hill river road stone milk plum "
         "star book bell rock cup sea ship").split()


def words(rng, n):
    return "".join(" " + rng.choice(WORDS) for _ in range(n))


def write_data(d, pairs, prompt, completion, seed=3):
    """pairs.jsonl (prompt/chosen/rejected) and sft.jsonl (system/user/assistant chats)."""
    os.makedirs(d, exist_ok=True)
    rng = random.Random(seed)
    with open(os.path.join(d, "pairs.jsonl"), "w") as f:
        for _ in range(pairs):
            f.write(json.dumps({"prompt": words(rng, prompt), "chosen": words(rng, completion - 1),
                                "rejected": words(rng, completion - 1)}) + "\n")
    with open(os.path.join(d, "sft.jsonl"), "w") as f:
        for _ in range(2 * pairs):
            f.write(json.dumps({"messages": [{"role": "system", "content": words(rng, 8)},
                                             {"role": "user", "content": words(rng, prompt)},
                                             {"role": "assistant", "content": words(rng, completion)}]}) + "\n")


def model_name(path):
    return os.path.basename(os.path.normpath(path))


def work_name(kind, dtype, mode=None):
    """The bench's work label: dpo-ref, dpo-bf16-precompute, sft, sft-bf16, ..."""
    return "-".join([kind] + (["bf16"] if dtype == "bf16" else []) + ([mode] if mode else []))


def cherry_precision(dtype):
    """cherry's flags for --dtype: autocast's counterpart is --mixed-precision bf16
    (cherry's --dtype is the saved weights' type, which the bench does not time)."""
    return ["--mixed-precision", "bf16"] if dtype == "bf16" else []


def rss_mib(who):
    return resource.getrusage(who).ru_maxrss / 1024.0


def set_threads(n):
    for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[v] = str(n)


class StepTimer:
    """A transformers TrainerCallback (built lazily: transformers is imported late) that
    sums the wall time of every optimizer step."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _T(TrainerCallback):
            def __init__(self):
                self.total, self.steps, self.t0 = 0.0, 0, None

            def on_step_begin(self, args, state, control, **kw):
                self.t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                self.total += time.perf_counter() - self.t0
                self.steps += 1

        return _T()


class TokenCounter:
    """Counts the positions (padding included) and the real tokens of the rows the
    policy's forward passes see while training."""

    def __init__(self, model):
        self.positions = self.real = self.rows = 0
        self.on = False
        model.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, mod, args, kwargs):
        if not self.on or not mod.training:
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        am = kwargs.get("attention_mask")
        self.rows += ids.shape[0]
        self.positions += ids.numel()
        self.real += int(am.sum()) if am is not None else ids.numel()


def load_model(path):
    import torch
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "attention_dropout", "hidden_dropout"):
        if hasattr(m.config, k):
            setattr(m.config, k, 0.0)
    for mod in m.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    return m


def trl_dpo(a):
    set_threads(a.threads)
    import torch

    torch.set_num_threads(a.threads)
    import trl
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    model = load_model(a.model)
    tok = AutoTokenizer.from_pretrained(a.model)
    ds = load_dataset("json", data_files=os.path.join(a.data, "pairs.jsonl"), split="train")
    ref_s = [0.0]
    orig = DPOTrainer._precompute_ref_logps

    def timed(self, *args, **kw):
        t0 = time.perf_counter()
        r = orig(self, *args, **kw)
        ref_s[0] += time.perf_counter() - t0
        return r

    DPOTrainer._precompute_ref_logps = timed
    with tempfile.TemporaryDirectory() as out:
        cfg = DPOConfig(output_dir=out, per_device_train_batch_size=a.batch_size, num_train_epochs=1,
                        learning_rate=a.lr, beta=a.beta, max_length=a.max_length,
                        precompute_ref_log_probs=a.mode == "precompute", bf16=a.dtype == "bf16", fp16=False,
                        gradient_checkpointing=False, use_cpu=True, report_to="none", save_strategy="no",
                        logging_strategy="no", disable_dropout=True, dataloader_num_workers=0, seed=1,
                        lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0)
        timer = StepTimer()
        tr = DPOTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok, callbacks=[timer])
        # the precision the row claims: accelerate's mixed_precision is what turns autocast on
        want_mp = "bf16" if a.dtype == "bf16" else "no"
        assert str(tr.accelerator.mixed_precision) == want_mp, \
            f"TRL runs mixed_precision={tr.accelerator.mixed_precision}, the row is {a.dtype}"
        assert all(not isinstance(x, torch.nn.Dropout) or x.p == 0 for x in tr.model.modules()), "dropout left on"
        count = TokenCounter(tr.model)
        count.on = True
        tr.train()
    pairs = len(ds)
    secs = ref_s[0] + timer.total
    print(f"RESULT trl {work_name('dpo', a.dtype, a.mode)} {model_name(a.model)} B={a.batch_size} pairs_per_s={pairs / secs:.3f} "
          f"rss_mib={rss_mib(resource.RUSAGE_SELF):.0f} tokens_per_pair={count.positions / (count.rows / 2):.1f} "
          f"real_tokens_per_pair={count.real / (count.rows / 2):.1f} ref_s={ref_s[0]:.2f} steps={timer.steps} "
          f"steps_s={timer.total:.2f} (trl {trl.__version__}, torch {torch.__version__}, {a.dtype}, {a.threads} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')})", flush=True)


def cherry_log_steps(log):
    """(seconds, tokens) summed over the training records of a cherry metrics log."""
    secs, prev = 0.0, 0
    steps = 0
    with open(log) as f:
        for line in f:
            r = json.loads(line)
            if "tokens_per_s" not in r or any(k.startswith("eval_") for k in r):
                continue
            n = r["num_tokens"] - prev
            prev = r["num_tokens"]
            secs += n / r["tokens_per_s"]
            steps += 1
    return secs, prev, steps


def cherry_run(argv):
    """Runs a cherry program; returns its stderr (progress off, not quiet)."""
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        sys.exit(f"bench_trl: {' '.join(argv)}: exit {p.returncode}")
    return p.stderr


def cherry_dpo(a):
    data = os.path.join(a.data, "pairs.jsonl")
    with open(data) as f:
        pairs = sum(1 for _ in f)
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.jsonl")
        err = cherry_run([os.path.join(a.bin, "dpo"), "--no-progress", "-m", a.model, "-o", os.path.join(tmp, "out"),
                          "--epochs", "1", "--batch-size", str(a.batch_size), "--max-length", str(a.max_length),
                          "--lr", str(a.lr), "--beta", str(a.beta), "--save-every", "0", "--threads",
                          str(a.threads), "--log", log] + cherry_precision(a.dtype) + a.cherry_flags.split() + [data])
        ref_s = 0.0
        for line in err.splitlines():
            if "reference log-probs of" in line and " computed in " in line:
                ref_s = float(line.split(" computed in ")[1].split("s")[0])
        secs, tokens, steps = cherry_log_steps(log)
    # one run serves both modes: cherry computes the reference once either way
    for mode in ("ref", "precompute") if a.mode == "both" else (a.mode,):
        print(f"RESULT cherry {work_name('dpo', a.dtype, mode)} {model_name(a.model)} B={a.batch_size} "
              f"pairs_per_s={pairs / (ref_s + secs):.3f} rss_mib={rss_mib(resource.RUSAGE_CHILDREN):.0f} "
              f"tokens_per_pair={tokens / pairs:.1f} real_tokens_per_pair={tokens / pairs:.1f} ref_s={ref_s:.2f} "
              f"steps={steps} steps_s={secs:.2f} ({a.dtype}, {a.threads} threads, "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'passive, cherry default')})", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write-data")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=64, help="prompt tokens")
    ap.add_argument("--completion", type=int, default=64, help="completion tokens, the EOS included")
    ap.add_argument("--side", choices=["cherry", "trl"])
    ap.add_argument("--mode", choices=["ref", "precompute", "both"], default="ref",
                    help="both: cherry only, one run printed for each mode")
    ap.add_argument("--model")
    ap.add_argument("--data")
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cherry-flags", default="",
                    help="more flags for cherry's dpo, e.g. --no-prefix-sharing (TRL's row layout)")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: mixed precision on both sides (TRL bf16=True, cherry --mixed-precision bf16)")
    a = ap.parse_args()
    if a.write_data:
        write_data(a.write_data, a.pairs, a.prompt, a.completion)
        return
    if not (a.side and a.model and a.data):
        ap.error("--side, --model and --data are needed")
    (trl_dpo if a.side == "trl" else cherry_dpo)(a)


if __name__ == "__main__":
    main()
