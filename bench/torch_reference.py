#!/usr/bin/env python3
"""PyTorch reference for bench_forward: the same work with Hugging Face transformers.

Per pass: a teacher-forced forward of `sequences` x `seq_len` random token ids through LlamaForCausalLM
(random bf16 weights, attn_implementation="sdpa"), then the vocab reductions divprune does per token:
log-softmax in fp32, NLL of the next token, argmax agreement with the base model, and KL(base || model)
against base log-probs stored once in fp16 on the GPU (made by an untimed first eager pass). Modes:
`eager` and `compile` (torch.compile of the whole step, forward + vocab work, mode max-autotune by default).

    python3 bench/torch_reference.py --preset 7b --json out.json

Throughput counts the same FLOPs as bench_forward:
    2 * (L * layer_linear_params + V * C) * tokens  +  L * sequences * 4 * seq_len^2 * C / 2   (causal attention)

Needs torch and transformers; no network (the model is built from a LlamaConfig, weights are random).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time

PRESETS = {
    # Llama-2-7B (meta-llama/Llama-2-7b-hf config.json)
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=32, vocab_size=32000),
    "tiny": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=6, num_attention_heads=8,
                 num_key_value_heads=8, vocab_size=32000),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="7b")
    p.add_argument("--sequences", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch", type=int, default=16, help="sequences per forward call (default: all 16 at once)")
    p.add_argument("--vocab-microbatch", type=int, default=0,
                   help="sequences per vocab-reduction chunk (0: the whole batch; 4 keeps fp32 temporaries small)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--modes", default="eager,compile", help="comma-separated: eager, compile")
    p.add_argument("--compile-mode", default="max-autotune")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", default="", help="write results to this file")
    args = p.parse_args(argv)
    for name in ("sequences", "seq_len", "batch", "repeat"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.warmup < 0 or args.vocab_microbatch < 0:
        p.error("--warmup and --vocab-microbatch must be non-negative")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in args.modes:
        if m not in ("eager", "compile"):
            p.error(f"unknown mode {m!r} (eager, compile)")
    return args


def flops_per_pass(shape: dict, sequences: int, seq_len: int) -> dict:
    """The FLOP convention of bench_forward (see its comment): linears + lm_head + causal attention."""
    c, f, L, v = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"], shape["vocab_size"]
    d = c // shape["num_attention_heads"]
    q, kv = shape["num_attention_heads"] * d, shape["num_key_value_heads"] * d
    layer_linear = c * q + 2 * c * kv + q * c + 3 * c * f
    tokens = sequences * seq_len
    linear = 2.0 * (L * layer_linear + v * c) * tokens
    attention = L * sequences * 4.0 * seq_len * seq_len * c / 2.0
    return {"per_pass": linear + attention, "linear_and_lm_head": linear, "attention": attention,
            "formula": "2*(L*layer_linear_params + V*C)*tokens + L*sequences*4*seq_len^2*C/2"}


def build_model(torch, transformers, shape: dict, seq_len: int, device: str, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**shape, max_position_embeddings=max(4096, seq_len), rms_norm_eps=1e-5, rope_theta=10000.0,
                         tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                         attn_implementation="sdpa")
    try:
        config._attn_implementation = "sdpa"
    except Exception:  # older/newer transformers without the setter: the constructor argument already set it
        pass
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    # Parameters only: a whole-model .to(bfloat16) would also round the fp32 rotary inv_freq buffer.
    for p in model.parameters():
        if p.dtype != torch.bfloat16 or p.device.type != torch.device(device).type:
            p.data = p.data.to(device=device, dtype=torch.bfloat16)
    # Same distribution as bench_forward: uniform with std 0.02 for every matrix, norm weights 1.
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    half_range = 0.02 * math.sqrt(3.0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.uniform_(-half_range, half_range, generator=gen)
            else:
                p.fill_(1.0)
    attn = getattr(model.config, "_attn_implementation", None)
    return model, attn


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"torch_reference: needs torch and transformers ({e})", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("torch_reference: no CUDA device is visible (use --device cpu for a smoke test)", file=sys.stderr)
        return 2

    shape = PRESETS[args.preset]
    S, n, B = args.sequences, args.seq_len, min(args.batch, args.sequences)
    V = shape["vocab_size"]
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    device_name = torch.cuda.get_device_name(dev) if cuda else (platform.processor() or "cpu")

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    model, attn_impl = build_model(torch, transformers, shape, n, args.device, args.seed)
    sync()
    init_s = time.perf_counter() - t0
    print(f"torch_reference: {device_name}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"attention {attn_impl}; model built in {init_s:.1f} s", flush=True)

    gen = torch.Generator(device="cpu")
    gen.manual_seed(args.seed + 1)
    tokens = torch.randint(0, V, (S, n + 1), generator=gen).to(dev)
    ids, targets = tokens[:, :n].contiguous(), tokens[:, 1:].contiguous()
    batches = [(b, min(b + B, S)) for b in range(0, S, B)]
    micro = args.vocab_microbatch or B

    def forward_logits(x):
        return model(input_ids=x, use_cache=False).logits  # (b, n, V) bf16

    def vocab_work(logits, tgt, base_lp16, base_am):
        """Sums over the batch: NLL of the targets, KL(base || model), argmax agreement with the base."""
        nll = logits.new_zeros((), dtype=torch.float32)
        kl = logits.new_zeros((), dtype=torch.float32)
        agree = logits.new_zeros((), dtype=torch.int64)
        for m in range(0, logits.shape[0], micro):
            lp = torch.log_softmax(logits[m:m + micro].float(), dim=-1)  # (m, n, V) fp32
            nll = nll - lp.gather(-1, tgt[m:m + micro].unsqueeze(-1)).sum()
            agree = agree + (lp.argmax(dim=-1) == base_am[m:m + micro]).sum()
            base = base_lp16[m:m + micro].float()
            kl = kl + (base.exp() * (base - lp)).sum()
        return torch.stack([nll, kl, agree.to(torch.float32)])

    def step(x, tgt, base_lp16, base_am):
        return vocab_work(forward_logits(x), tgt, base_lp16, base_am)

    # Base pass (eager, untimed): fp16 log-probs and argmax kept on the device.
    with torch.no_grad():
        base_lp16 = torch.empty((S, n, V), dtype=torch.float16, device=dev)
        base_am = torch.empty((S, n), dtype=torch.int64, device=dev)
        for b, e in batches:
            logits = forward_logits(ids[b:e])
            for m in range(b, e, micro):
                lp = torch.log_softmax(logits[m - b:m - b + micro].float(), dim=-1)
                base_lp16[m:m + micro] = lp.to(torch.float16)
                base_am[m:m + micro] = lp.argmax(dim=-1)
            del logits
        sync()

    flops = flops_per_pass(shape, S, n)
    results = {}
    for mode in args.modes:
        fn = step
        compile_s = None
        if mode == "compile":
            fn = torch.compile(step, mode=args.compile_mode)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)

        def one_pass():
            acc = torch.zeros(3, dtype=torch.float64, device=dev)
            for b, e in batches:
                if mode == "compile" and hasattr(torch, "compiler") and hasattr(torch.compiler,
                                                                                "cudagraph_mark_step_begin"):
                    torch.compiler.cudagraph_mark_step_begin()
                out = fn(ids[b:e], targets[b:e], base_lp16[b:e], base_am[b:e])
                acc += out.double()  # read before the next (CUDA-graph) replay can overwrite `out`
            sync()
            return acc

        with torch.no_grad():
            warm_s = []
            # compile: the first call compiles (and autotunes); CUDA-graph trees record on a later call and
            # replay from the third on, so compiled modes get at least 3 untimed passes.
            for w in range(max(args.warmup, 3 if mode == "compile" else 0)):
                t = time.perf_counter()
                one_pass()
                warm_s.append(time.perf_counter() - t)
                print(f"torch_reference[{mode}]: warmup {w + 1}: {warm_s[-1]:.3f} s", flush=True)
            if mode == "compile" and warm_s:
                compile_s = warm_s[0]
            times, acc = [], None
            for r in range(args.repeat):
                t = time.perf_counter()
                acc = one_pass()
                times.append(time.perf_counter() - t)
                print(f"torch_reference[{mode}]: repeat {r + 1}: {times[-1]:.3f} s "
                      f"({S * n / times[-1]:.0f} tokens/s)", flush=True)
        median_s = statistics.median(times)
        nll, kl, agree = (float(v) for v in acc.cpu())
        tokens_total = S * n
        res = {
            "seconds_per_pass": times,
            "median_s": median_s,
            "best_s": min(times),
            "tokens_per_s": tokens_total / median_s,
            "tokens_per_s_best": tokens_total / min(times),
            "tflops": flops["per_pass"] / median_s / 1e12,
            "ms_per_sequence": 1e3 * median_s / S,
            "warmup_s": warm_s,
            "first_call_s_including_compile": compile_s,
            "peak_device_memory_mib": torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else None,
            "checks": {"mean_nll": nll / tokens_total, "mean_kl_vs_base": kl / tokens_total,
                       "argmax_agreement": agree / tokens_total},
        }
        if mode == "compile":
            res["compile_mode"] = args.compile_mode
        results[mode] = res
        print(f"torch_reference[{mode}]: {res['tokens_per_s']:.0f} tokens/s, {res['tflops']:.1f} TFLOP/s, "
              f"{res['ms_per_sequence']:.2f} ms/sequence, peak {res['peak_device_memory_mib'] or 0:.0f} MiB; "
              f"mean NLL {res['checks']['mean_nll']:.4f}, KL vs base {res['checks']['mean_kl_vs_base']:.3e}, "
              f"argmax agreement {res['checks']['argmax_agreement']:.4f}", flush=True)
        del fn
        if mode == "compile":
            torch._dynamo.reset()

    out = {
        "tool": "torch_reference",
        "device": device_name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "attn_implementation": attn_impl,
        "preset": args.preset,
        "config": dict(shape, head_dim=shape["hidden_size"] // shape["num_attention_heads"], dtype="bfloat16"),
        "workload": {"sequences": S, "seq_len": n, "sequences_per_forward": B, "vocab_microbatch": micro,
                     "warmup": args.warmup, "repeat": args.repeat, "seed": args.seed, "tokens_per_pass": S * n,
                     "base_logprobs": "device float16"},
        "flops": flops,
        "init_s": init_s,
        "modes": results,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
        print(f"torch_reference: wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
