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

Compile time is reported separately. The last line is one JSON object with every figure.

    python benchmarks/gpu.py [--sampler-batch 64] [--prompt-len 256] [--new-tokens 512]
                             [--update-batch 16] [--length 1024] [--remat] [--repeats 3]
                             [--peak-tflops T] [--tiny --allow-cpu]   # a smoke run on CPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

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
    import numpy as np

    from coderl_jax.sampling.sampler import DecodeSpec, generate_tokens

    spec = DecodeSpec(n=1, max_new_tokens=args.new_tokens, greedy=False, top_k=0, use_top_p=False, eos_ids=(),
                      pad_id=0, temperature=1.0, cache_dtype="bfloat16", chunk=args.chunk, unroll=args.unroll)
    rng = np.random.RandomState(0)
    prompts = jnp.asarray(rng.randint(1, cfg.vocab_size, (args.sampler_batch, args.prompt_len)), jnp.int32)
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


def bench_update(cfg, params, args, peak) -> dict:
    import jax
    import numpy as np

    from coderl_jax.rl.train_step import LossConfig, OptimConfig, init_train_state, make_optimizer, make_train_step

    optimizer = make_optimizer(OptimConfig(learning_rate=1e-6))
    step = make_train_step(cfg, LossConfig(kl_coef=0.001, remat=args.remat), optimizer, num_micro=args.micro)
    b, length, prompt = args.update_batch, args.length, args.length // 8
    rng = np.random.RandomState(0)
    attn = np.ones((b, length), bool)
    loss_mask = np.zeros((b, length), bool)
    loss_mask[:, prompt - 1:length - 1] = True
    batch = dict(tokens=rng.randint(0, cfg.vocab_size, (b, length)).astype(np.int32),
                 positions=np.broadcast_to(np.arange(length, dtype=np.int32), (b, length)).copy(),
                 attn_mask=attn, loss_mask=loss_mask,
                 old_logprobs=rng.uniform(-12, -11, (b, length)).astype(np.float32),
                 ref_logprobs=rng.uniform(-12, -11, (b, length)).astype(np.float32),
                 advantages=np.repeat(rng.normal(0, 1, (b, 1)), length, 1).astype(np.float32))
    batch = jax.device_put(batch)
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
            "update_tokens_per_s": b * length / best, "update_step_s": best, "update_model_flops": flops,
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
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
