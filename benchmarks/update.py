"""Update-step throughput: our jitted train step vs the same computation in transformers + PyTorch.

Forward, the clipped policy-gradient loss over response tokens (token-mean, k3 KL to a reference),
backward, gradient clipping and AdamW, on the sampler benchmark's random Qwen2 config (hidden 256,
4 layers, 8 heads, 2 KV heads, intermediate 768, vocab 2048, tied embeddings), batch 64 x 192
tokens. Each side runs in a long-lived process of its own (benchmarks/sides.py), started for that
side alone; the parent alternates their timed repeats (ABBA), so a busy machine slows both alike
and neither runs in a process whose heap or thread pools the other has shaped. Compile time is
reported separately. Model FLOPs utilisation is against the machine's measured fp32 matmul peak
(measured in a third process). The last line is one JSON object with the figures and "ratio"
(ours / PyTorch tokens/s).

Both side processes first apply `coderl_jax.cpu_runtime.tune_cpu_runtime()` (malloc settings that
let freed step buffers be reused instead of page-faulted afresh), as `coderl train` does on a CPU;
`--no-cpu-tuning` skips it on both.

    python benchmarks/update.py [--batch 64] [--length 192] [--repeats 5] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout


def model_config():
    from coderl_jax.models import ModelConfig

    return ModelConfig(family="qwen2", vocab_size=2048, hidden_size=256, intermediate_size=768, num_layers=4,
                       num_heads=8, num_kv_heads=2, head_dim=32, attention_bias=True, tie_word_embeddings=True,
                       max_position_embeddings=4096)


def make_batch(b, length, prompt, vocab, seed=0):
    rng = np.random.RandomState(seed)
    tokens = rng.randint(0, vocab, (b, length)).astype(np.int32)
    attn = np.ones((b, length), bool)
    loss = np.zeros((b, length), bool)
    loss[:, prompt - 1:length - 1] = True
    positions = np.broadcast_to(np.arange(length, dtype=np.int32), (b, length)).copy()
    adv = np.repeat(rng.normal(0, 1, (b, 1)), length, 1).astype(np.float32)
    old = rng.uniform(-8, -7, (b, length)).astype(np.float32)
    ref = rng.uniform(-8, -7, (b, length)).astype(np.float32)
    return dict(tokens=tokens, positions=positions, attn_mask=attn, loss_mask=loss, old_logprobs=old,
                ref_logprobs=ref, advantages=adv)


def matmul_peak_gflops(sizes=(1024, 2048), repeats=7):
    """The best float32 matmul rate seen over a few square sizes (these shared machines vary run to
    run; the fastest repeat is the closest to what the cores can do)."""
    import jax
    import jax.numpy as jnp

    best = 0.0
    for n in sizes:
        a = jnp.ones((n, n), jnp.float32)
        f = jax.jit(lambda x: x @ x)
        f(a).block_until_ready()
        for _ in range(repeats):
            t = time.perf_counter()
            f(a).block_until_ready()
            best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def train_flops(cfg, tokens):
    """6 x params x tokens for the dense parts plus attention score/value matmuls (fwd+bwd)."""
    n_params = cfg.num_params()
    return 6 * n_params * tokens


def ours(cfg, batch, steps):
    import jax
    import jax.numpy as jnp

    from coderl_jax.models import init_params
    from coderl_jax.optim import OptimConfig, make_optimizer
    from coderl_jax.rl.train_step import LossConfig, init_train_state, make_train_step

    opt = make_optimizer(OptimConfig(learning_rate=1e-6))
    step = make_train_step(cfg, LossConfig(), opt)
    state = init_train_state(init_params(cfg, 0), opt)
    batch = jax.tree.map(jnp.asarray, batch)
    t = time.perf_counter()
    state, m = step(state, batch, jax.random.key(0))
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t

    def run():
        nonlocal state
        t0 = time.perf_counter()
        for _ in range(steps):
            state, metrics = step(state, batch, jax.random.key(0))
        jax.block_until_ready(metrics)
        return time.perf_counter() - t0

    return run, compile_s


def torch_model(cfg):
    """A random transformers Qwen2ForCausalLM with `cfg`'s architecture (seeded)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    return Qwen2ForCausalLM(Qwen2Config(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        tie_word_embeddings=True, max_position_embeddings=cfg.max_position_embeddings))


def torch_side(cfg, batch, steps, device="cpu", autocast=None):
    """The same step in transformers + PyTorch; on a GPU, `autocast=torch.bfloat16` gives float32
    master weights with bfloat16 compute, as our configs run."""
    import contextlib

    import torch

    model = torch_model(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.01)
    tokens = torch.tensor(batch["tokens"], dtype=torch.long, device=device)
    mask = torch.tensor(batch["loss_mask"][:, :-1], dtype=torch.float32, device=device)
    adv = torch.tensor(batch["advantages"][:, :-1], device=device)
    old = torch.tensor(batch["old_logprobs"][:, :-1], device=device)
    ref = torch.tensor(batch["ref_logprobs"][:, :-1], device=device)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)

    def forward():
        ctx = torch.autocast(device_type=str(device).split(":")[0], dtype=autocast) if autocast else \
            contextlib.nullcontext()
        with ctx:
            return model(input_ids=tokens).logits

    def one_step():
        logits = forward()[:, :-1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, tokens[:, 1:, None])[..., 0]
        ratio = torch.exp(torch.clamp(logp - old, -20, 20))
        l1 = -adv * ratio
        l2 = -adv * torch.clamp(ratio, 0.8, 1.2)
        c1 = torch.maximum(l1, l2)
        per = torch.where(adv < 0, torch.minimum(-adv * 3.0, c1), c1)
        d = torch.clamp(ref - logp, -20, 20)
        kl = torch.clamp(torch.exp(d) - d - 1, -10, 10)
        loss = (per * mask).sum() / mask.sum() + 0.001 * (kl * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    t = time.perf_counter()
    one_step()
    sync()
    warm_s = time.perf_counter() - t

    def run():
        t0 = time.perf_counter()
        for _ in range(steps):
            one_step()
        sync()
        return time.perf_counter() - t0

    return run, warm_s


def ours_side(batch: int, length: int, prompt: int, steps: int):
    """benchmarks/sides.py factory: our step in this process; run() -> seconds per step."""
    import jax

    cfg = model_config()
    run, compile_s = ours(cfg, make_batch(batch, length, prompt, cfg.vocab_size), steps)
    run()  # untimed warm-up of the loop
    return (lambda: run() / steps), {"compile_s": round(compile_s, 2), "jax": jax.__version__}


def torch_side_process(batch: int, length: int, prompt: int, steps: int):
    """benchmarks/sides.py factory: the PyTorch step in this process; run() -> seconds per step."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    cfg = model_config()
    run, warm_s = torch_side(cfg, make_batch(batch, length, prompt, cfg.vocab_size), steps)
    run()
    return (lambda: run() / steps), {"first_step_s": round(warm_s, 2), "torch": torch.__version__,
                                     "threads": torch.get_num_threads(),
                                     "capability": torch.backends.cpu.get_cpu_capability()}


def peak_side():
    """benchmarks/sides.py factory: the fp32 matmul peak, measured in a JAX process of its own."""
    return matmul_peak_gflops, {}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=192)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--no-cpu-tuning", action="store_true", help="skip coderl_jax.cpu_runtime.tune_cpu_runtime")
    parser.add_argument("--isa", choices=["native", "avx2"], default="native",
                        help="avx2: cap XLA and PyTorch to AVX2 (a proxy for AVX2 machines, labelled so)")
    args = parser.parse_args()
    from sides import Sides, cpu_model, isa_env

    tuning = not args.no_cpu_tuning
    cfg = model_config()
    tokens_per_step = args.batch * args.length
    shape = {"batch": args.batch, "length": args.length, "prompt": args.prompt, "steps": args.steps}
    times: dict[str, list[float]] = {"ours": [], "pytorch": []}
    with Sides({"ours": ("update:ours_side", shape), "pytorch": ("update:torch_side_process", shape)},
               cpu_tuning=tuning, env=isa_env(args.isa)) as sides:
        for r in range(args.repeats):
            for name in sides.order(r):
                times[name].append(sides.run(name))
        info = sides.info
    with Sides({"peak": ("update:peak_side", {})}, cpu_tuning=tuning, env=isa_env(args.isa)) as sides:
        peak = sides.run("peak")
    our_t, torch_t = times["ours"], times["pytorch"]
    ours_tps = tokens_per_step / statistics.median(our_t)
    torch_tps = tokens_per_step / statistics.median(torch_t)
    mfu = train_flops(cfg, tokens_per_step) / statistics.median(our_t) / (peak * 1e9)
    torch_mfu = train_flops(cfg, tokens_per_step) / statistics.median(torch_t) / (peak * 1e9)
    compile_s = info["ours"]["compile_s"]
    isa = " (capped to AVX2 on both sides: a proxy)" if args.isa == "avx2" else ""
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores){isa}; jax {info['ours']['jax']}, torch {info['pytorch']['torch']} "
          f"({info['pytorch']['capability']}) with {info['pytorch']['threads']} threads; each side in its own process")
    print(f"ours    : {ours_tps:9.0f} tokens/s  (median of {args.repeats}, {args.steps} steps each; compile {compile_s:.1f}s)")
    print(f"pytorch : {torch_tps:9.0f} tokens/s  (first step {info['pytorch']['first_step_s']:.2f}s)")
    print("per-step seconds, ours   : " + " ".join(f"{t:.3f}" for t in our_t))
    print("per-step seconds, pytorch: " + " ".join(f"{t:.3f}" for t in torch_t))
    print(f"matmul peak {peak:.0f} GFLOP/s; MFU ours {mfu:.1%}, pytorch {torch_mfu:.1%}")
    print(json.dumps({"cpu": cpu_model(), "isa": args.isa, "ours_tokens_per_s": round(ours_tps, 1), "pytorch_tokens_per_s": round(torch_tps, 1),
                      "ratio": round(ours_tps / torch_tps, 3), "compile_s": compile_s,
                      "mfu": round(mfu, 4), "pytorch_mfu": round(torch_mfu, 4), "matmul_peak_gflops": round(peak, 1),
                      "batch": args.batch, "length": args.length, "cpu_tuning": tuning,
                      "runs_s": {k: [round(t, 4) for t in v] for k, v in times.items()}}))

if __name__ == "__main__":
    main()
