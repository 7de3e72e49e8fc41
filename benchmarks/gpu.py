"""GPU check: sampler tokens/s and update-step MFU for a 0.5B-size random model on one NVIDIA GPU.

Needs the `cuda` extra (`pip install -e '.[cuda]'`). The model has Qwen2.5-0.5B's architecture
(hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate 4864, vocabulary 151,936, tied
embeddings) with random weights, float32 master weights and bfloat16 compute, as the TPU configs.

  sampler  `generate_tokens`, B prompts x P tokens, N new tokens each at temperature 1 (no EOS, so
           every row decodes all N), bfloat16 KV cache: new tokens per second.
  update   the train step (forward, clipped policy loss + k3 KL, backward, AdamW) on B x L tokens:
           tokens per second and MFU = model FLOPs / time / the GPU's dense bf16 peak, with model
           FLOPs = 6 x parameters x tokens + 12 x layers x heads x head_dim x L^2/2 x rows (causal
           attention), and XLA's own cost-analysis count beside it.

  --peer   the same two measurements with transformers + PyTorch on the same GPU, in the same run:
           `generate` (bfloat16 weights, sampling at temperature 1) and the update step of
           benchmarks/update.py (float32 weights under bfloat16 autocast), and the ratios.

Compile time is reported separately. The last line is one JSON object with every figure.

    python benchmarks/gpu.py [--sampler-batch 64] [--prompt-len 256] [--new-tokens 512]
                             [--update-batch 16] [--length 1024] [--remat] [--repeats 3]
                             [--peak-tflops T] [--peer] [--tiny --allow-cpu]   # a smoke run on CPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/update.py's PyTorch step

# dense bf16 peak TFLOP/s by device kind (substring match on jax's device_kind; no sparsity)
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
                    "RTX 4090": 165.0, "V100": 125.0}


def model_config(tiny: bool = False):
    from coderl_jax.models import ModelConfig

    if tiny:
        return ModelConfig(family="qwen2", vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=2,
                           num_heads=4, num_kv_heads=2, head_dim=16, attention_bias=True, tie_word_embeddings=True,
                           param_dtype="float32", dtype="bfloat16", max_position_embeddings=4096)
    return ModelConfig(family="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864, num_layers=24,
                       num_heads=14, num_kv_heads=2, head_dim=64, attention_bias=True, tie_word_embeddings=True,
                       rope_theta=1e6, param_dtype="float32", dtype="bfloat16", max_position_embeddings=32768)


def peak_tflops(device_kind: str, override: float | None) -> float | None:
    if override:
        return override
    for name, peak in PEAK_BF16_TFLOPS.items():
        if name.lower() in device_kind.lower():
            return peak
    return None


def update_model_flops(cfg, rows: int, length: int) -> float:
    attention = 12 * cfg.num_layers * cfg.num_heads * cfg.head_dim * (length * length / 2) * rows
    return 6 * cfg.num_params() * rows * length + attention


def _timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def bench_sampler(cfg, params, args) -> dict:
    import jax
    import jax.numpy as jnp

    from coderl_jax.sampling.sampler import DecodeSpec, generate_tokens

    spec = DecodeSpec(n=1, max_new_tokens=args.new_tokens, greedy=False, top_k=0, use_top_p=False, eos_ids=(),
                      pad_id=0, temperature=1.0, cache_dtype="bfloat16", chunk=args.chunk, unroll=args.unroll)
    prompts = jnp.asarray(sampler_prompts(cfg, args), jnp.int32)
    mask = jnp.ones(prompts.shape, bool)
    sample_params = jax.tree.map(lambda x: x.astype(cfg.jnp_dtype), params)  # the sampler's bf16 copy

    def run(seed=0):
        out = generate_tokens(sample_params, cfg, prompts, mask, jax.random.key(seed), spec=spec)
        out.tokens_rn.block_until_ready()
        return out

    t0 = time.perf_counter()
    run()
    compile_s = time.perf_counter() - t0
    times = _timed(run, args.repeats)
    new_tokens = args.sampler_batch * args.new_tokens
    return {"sampler_batch": args.sampler_batch, "prompt_len": args.prompt_len, "new_tokens": args.new_tokens,
            "sampler_tokens_per_s": new_tokens / min(times), "sampler_tokens_per_s_median": new_tokens /
            statistics.median(times), "sampler_compile_s": compile_s}


def update_batch(cfg, args) -> dict:
    from update import make_batch

    return make_batch(args.update_batch, args.length, args.length // 8, cfg.vocab_size)


def sampler_prompts(cfg, args):
    import numpy as np

    return np.random.RandomState(0).randint(1, cfg.vocab_size, (args.sampler_batch, args.prompt_len))


def peer_sampler(cfg, args) -> dict:
    """transformers' `generate` on the same random architecture, bfloat16 weights, on the GPU."""
    import torch
    from update import torch_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = torch_model(cfg).to(device=device, dtype=torch.bfloat16).eval()
    prompts = torch.tensor(sampler_prompts(cfg, args), device=device)

    def run(new_tokens):
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=True, temperature=1.0,
                                 top_k=0, top_p=1.0, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 eos_token_id=None, pad_token_id=0)
        if device == "cuda":
            torch.cuda.synchronize()
        assert out.shape[1] == args.prompt_len + new_tokens
        return time.perf_counter() - t0

    run(8)  # warm-up
    times = [run(args.new_tokens) for _ in range(args.repeats)]
    return {"peer_sampler_tokens_per_s_median": args.sampler_batch * args.new_tokens / statistics.median(times)}


def peer_update(cfg, args, peak) -> dict:
    """benchmarks/update.py's transformers + PyTorch step (float32 weights, bfloat16 autocast)."""
    import torch
    from update import torch_side

    device = "cuda" if torch.cuda.is_available() else "cpu"
    run, _ = torch_side(cfg, update_batch(cfg, args), 1, device=device, autocast=torch.bfloat16)
    median_s = statistics.median(run() for _ in range(args.repeats))
    flops = update_model_flops(cfg, args.update_batch, args.length)
    return {"peer_update_tokens_per_s_median": args.update_batch * args.length / median_s,
            "peer_update_mfu": (flops / median_s / (peak * 1e12)) if peak else None}


def bench_update(cfg, params, args, peak) -> dict:
    import jax

    from coderl_jax.optim import OptimConfig, make_optimizer
    from coderl_jax.rl.train_step import LossConfig, init_train_state, make_train_step

    optimizer = make_optimizer(OptimConfig(learning_rate=1e-6))
    step = make_train_step(cfg, LossConfig(kl_coef=0.001, remat=args.remat), optimizer, num_micro=args.micro)
    b, length = args.update_batch, args.length
    batch = jax.device_put(update_batch(cfg, args))
    state = {"s": init_train_state(params, optimizer)}
    t0 = time.perf_counter()
    compiled = step.lower(state["s"], batch, jax.random.key(0)).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    xla_flops = float((cost or {}).get("flops", 0.0)) * args.micro  # a scan body is counted once

    def run():
        state["s"], m = compiled(state["s"], batch, jax.random.key(0))
        jax.block_until_ready(m)

    run()  # warm-up
    times = _timed(run, args.repeats)
    flops = update_model_flops(cfg, b, length)
    best = min(times)
    return {"update_batch": b, "length": length, "remat": args.remat, "micro_batches": args.micro,
            "update_tokens_per_s": b * length / best, "update_tokens_per_s_median": b * length / statistics.median(times),
            "update_step_s": best, "update_model_flops": flops,
            "update_xla_flops": xla_flops, "update_mfu": (flops / best / (peak * 1e12)) if peak else None,
            "update_compile_s": compile_s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sampler-batch", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--unroll", type=int, default=4)
    ap.add_argument("--update-batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--micro", type=int, default=1)
    ap.add_argument("--remat", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak (default: by name)")
    ap.add_argument("--skip-sampler", action="store_true")
    ap.add_argument("--skip-update", action="store_true")
    ap.add_argument("--peer", action="store_true", help="also transformers + PyTorch on the same GPU, and ratios")
    ap.add_argument("--tiny", action="store_true", help="a tiny model (smoke test)")
    ap.add_argument("--allow-cpu", action="store_true", help="run without a GPU (smoke test only)")
    args = ap.parse_args(argv)

    import jax

    from coderl_jax.models import init_params

    backend = jax.default_backend()
    if backend != "gpu" and not args.allow_cpu:
        print(f"benchmarks/gpu.py: JAX backend is {backend!r}, not 'gpu' (pip install -e '.[cuda]'); "
              "--allow-cpu runs it anyway")
        return 2
    device = jax.devices()[0]
    cfg = model_config(args.tiny)
    peak = peak_tflops(device.device_kind, args.peak_tflops) if backend == "gpu" else args.peak_tflops
    params = init_params(cfg, 0)
    result = {"device": device.device_kind, "backend": backend, "jax": jax.__version__,
              "params": cfg.num_params(), "peak_bf16_tflops": peak}
    print(f"{device.device_kind}: {cfg.num_params() / 1e6:.0f}M-parameter random Qwen2 "
          f"(peak {peak or '?'} bf16 TFLOP/s)", flush=True)
    if not args.skip_sampler:
        s = bench_sampler(cfg, params, args)
        result.update(s)
        print(f"sampler: batch {s['sampler_batch']}, prompt {s['prompt_len']}, {s['new_tokens']} new tokens: "
              f"{s['sampler_tokens_per_s']:,.0f} new tokens/s (median {s['sampler_tokens_per_s_median']:,.0f}); "
              f"compile {s['sampler_compile_s']:.0f} s", flush=True)
    if not args.skip_update:
        u = bench_update(cfg, params, args, peak)
        result.update(u)
        mfu = f"{100 * u['update_mfu']:.1f}%" if u["update_mfu"] is not None else "? (no peak known)"
        print(f"update: {u['update_batch']} x {u['length']} tokens: {u['update_tokens_per_s']:,.0f} tokens/s, "
              f"{u['update_step_s'] * 1e3:.0f} ms/step, MFU {mfu} (model FLOPs {u['update_model_flops']:.3e}, "
              f"XLA {u['update_xla_flops']:.3e}); compile {u['update_compile_s']:.0f} s", flush=True)
    if args.peer and not args.skip_sampler:
        result.update(peer_sampler(cfg, args))
        result["sampler_ratio"] = result["sampler_tokens_per_s_median"] / result["peer_sampler_tokens_per_s_median"]
        print(f"peer sampler (transformers generate, bf16): {result['peer_sampler_tokens_per_s_median']:,.0f} new "
              f"tokens/s (median); ratio {result['sampler_ratio']:.2f}x", flush=True)
    if args.peer and not args.skip_update:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the generate model is gone; give its cached blocks back
        result.update(peer_update(cfg, args, peak))
        result["update_ratio"] = result["update_tokens_per_s_median"] / result["peer_update_tokens_per_s_median"]
        print(f"peer update (PyTorch, bf16 autocast): {result['peer_update_tokens_per_s_median']:,.0f} tokens/s "
              f"(median); ratio {result['update_ratio']:.2f}x", flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
