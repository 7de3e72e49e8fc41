"""New tokens/s of our jitted sampler vs transformers' `generate` (PyTorch CPU), side by side.

Same random Qwen2 model for both (hidden 256, 4 layers, 8 heads, 2 KV heads, intermediate 768,
vocab 2048, tied embeddings), batch 64, prompt 64, 128 new tokens, temperature 1, no top-k / top-p,
no EOS stopping (both produce exactly 128 tokens per row). Each side runs in a long-lived process
of its own (benchmarks/sides.py), started for that side alone: the transformers side builds and
saves the seeded model, ours loads it. The parent alternates their timed repeats (ABBA),
`--repeats` each, and compares the medians, so a busy machine slows both alike. Compile time (the
first call of each shape) is reported separately and not counted.

With `--lengths longtail` it measures decoding with refilled rows instead: 256 sequences (64
prompts x 4 samples) whose lengths are forced by per-row caps drawn from a long-tailed
distribution (log-normal, median 24 tokens, most short and a few at the 256-token cap, like RL
code and alignment rows; a random model does not stop by itself), decoded through 64 refilled
rows in one call vs the same 256 sequences in 4 static calls of 64 rows, interleaved. The figure is
new useful tokens (the sum of the caps) per second; the last line's JSON has "refill_ratio".

Then a batch-size sweep of our sampler (tokens/s and KV-cache bytes per batch size), in our side's
process. Every process first applies `coderl_jax.cpu_runtime.tune_cpu_runtime()` as `coderl
train` and benchmarks/update.py do (`--no-cpu-tuning` skips it on both sides). `--isa avx2` caps
both sides to AVX2 (XLA and PyTorch): a proxy, on an AVX-512 machine, for the AVX2 machines most
laptops and many cloud CPUs are.
The last line of output is one JSON object.

    python benchmarks/sampler.py [--repeats 3] [--sweep 8,16,32,64,128,256] [--no-sweep] [--isa avx2]
    python benchmarks/sampler.py --lengths longtail [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

CONFIG = dict(vocab_size=2048, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
              num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=4096,
              tie_word_embeddings=True)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sweep", default="8,16,32,64,128,256", help="batch sizes for our sampler")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--unroll", type=int, default=4)
    ap.add_argument("--cache-dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    ap.add_argument("--lengths", default="fixed", choices=["fixed", "longtail"],
                    help="longtail: refilled rows vs static calls on long-tailed lengths (no torch)")
    ap.add_argument("--no-cpu-tuning", action="store_true", help="skip coderl_jax.cpu_runtime.tune_cpu_runtime")
    ap.add_argument("--isa", choices=["native", "avx2"], default="native",
                    help="avx2: cap XLA and PyTorch to AVX2 (a proxy for AVX2 machines, labelled so)")
    return ap.parse_args(argv)


def build_model(model_dir: str):
    """The seeded random Qwen2 in transformers, saved to `model_dir` (our side loads it from there)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    hf_cfg = Qwen2Config(**CONFIG)
    hf_cfg.architectures = ["Qwen2ForCausalLM"]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(hf_cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    model.save_pretrained(model_dir)
    return model


def longtail(args, tuning) -> int:
    """Refilled rows vs static calls over the same long-tailed sequences (see the module docstring)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from coderl_jax.models import transformer
    from coderl_jax.models.config import ModelConfig
    from coderl_jax.sampling.sampler import DecodeSpec, generate_refill, generate_tokens

    cfg = ModelConfig.from_hf({**CONFIG, "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]})
    params = transformer.init_params(cfg, 0)  # the lengths are forced: the weights do not matter
    prompts_n, group, slots, cap = 64, 4, 64, 256
    rng = np.random.RandomState(0)
    caps = np.clip(np.round(rng.lognormal(np.log(24), 1.0, prompts_n * group)), 4, cap).astype(np.int32)
    tokens = rng.randint(0, cfg.vocab_size, (prompts_n, args.prompt_len)).astype(np.int32)
    mask = np.ones_like(tokens, bool)
    spec = DecodeSpec(n=group, max_new_tokens=cap, greedy=False, top_k=0, use_top_p=False, eos_ids=(), pad_id=0,
                      cache_dtype=args.cache_dtype, chunk=args.chunk, unroll=args.unroll)
    per_call = slots // group  # prompts per static call: 64 rows each

    def refill(seed):
        t0 = time.perf_counter()
        out = generate_refill(params, cfg, tokens, mask, jax.random.key(seed), jnp.asarray(caps), spec=spec,
                              slots=slots)
        jax.block_until_ready(out)
        assert (np.asarray(out.num_tokens_r) == caps).all()
        return time.perf_counter() - t0

    def static(seed):
        t0 = time.perf_counter()
        for c in range(0, prompts_n, per_call):
            rows = slice(c * group, (c + per_call) * group)
            out = generate_tokens(params, cfg, tokens[c:c + per_call], mask[c:c + per_call], jax.random.key(seed),
                                  jnp.asarray(caps[rows]), spec=spec)
            jax.block_until_ready(out)
            assert (np.asarray(out.num_tokens_r) == caps[rows]).all()
        return time.perf_counter() - t0

    compile_s = {"refill": refill(0), "static": static(0)}
    t_refill, t_static = [], []
    for r in range(args.repeats):  # interleaved
        t_refill.append(refill(r + 1))
        t_static.append(static(r + 1))
    compile_s = {k: v - min(t_refill if k == "refill" else t_static) for k, v in compile_s.items()}
    useful = int(caps.sum())
    refill_tps, static_tps = useful / statistics.median(t_refill), useful / statistics.median(t_static)
    groups = caps.reshape(-1, slots)
    print(f"{caps.size} sequences through {slots} rows, prompt {args.prompt_len}, caps: median {np.median(caps):.0f}, "
          f"mean {caps.mean():.1f}, max {caps.max()}, {(caps == cap).sum()} at the cap; longest per static call "
          f"{groups.max(1).tolist()}; jax {jax.__version__} on {jax.devices()[0].platform}")
    print(f"refill:  {refill_tps:8.0f} useful tokens/s  (runs {', '.join(f'{t:.3f}' for t in t_refill)} s)")
    print(f"static:  {static_tps:8.0f} useful tokens/s  (runs {', '.join(f'{t:.3f}' for t in t_static)} s)")
    print(f"refill_ratio: {refill_tps / static_tps:.2f}x (of medians)   compile (not counted): "
          f"refill {compile_s['refill']:.1f} s, static {compile_s['static']:.1f} s")
    print(json.dumps({"lengths": "longtail", "sequences": int(caps.size), "slots": slots, "prompt_len": args.prompt_len,
                      "useful_tokens": useful, "refill_tokens_per_s": round(refill_tps),
                      "static_tokens_per_s": round(static_tps), "refill_ratio": round(refill_tps / static_tps, 3),
                      "compile_s": {k: round(v, 2) for k, v in compile_s.items()}, "cpu_tuning": tuning}))
    return 0


def ours_side(model_dir: str, batch: int, prompt_len: int, new_tokens: int, chunk: int, unroll: int,
              cache_dtype: str):
    """benchmarks/sides.py factory: our sampler on the saved model; run(batch, seed) -> seconds."""
    import jax
    import numpy as np

    from coderl_jax.models.hf_io import load_hf
    from coderl_jax.models.transformer import kv_cache_bytes
    from coderl_jax.sampling.sampler import SamplingParams, Sampler, cache_slots

    cfg, params = load_hf(model_dir)
    sampler = Sampler(cfg, params, None, max_cache_len=4096, cache_dtype=cache_dtype, chunk=chunk, unroll=unroll)
    rng = np.random.RandomState(0)
    sp = SamplingParams(n=1, max_new_tokens=new_tokens, temperature=1.0, eos_ids=(), seed=0)

    def run(batch: int = batch, seed: int = 0, kind: str = "time"):
        if kind == "cache_mib":
            slots = cache_slots(prompt_len, sampler.spec(sp))
            dtype = np.dtype(cache_dtype) if cache_dtype == "float32" else jax.numpy.bfloat16
            return kv_cache_bytes(cfg, batch, slots, dtype) / 2**20
        prompts = rng.randint(0, cfg.vocab_size, (batch, prompt_len)).tolist()
        t0 = time.perf_counter()
        out, _ = sampler.generate_arrays(prompts, SamplingParams(**{**sp.__dict__, "seed": seed}))
        jax.block_until_ready(out)
        dt = time.perf_counter() - t0
        assert int(np.asarray(out.num_tokens_r).min()) == new_tokens
        return dt

    first = run()  # compile + run
    compile_s = first - run()
    return run, {"compile_s": round(compile_s, 2), "jax": jax.__version__, "platform": jax.devices()[0].platform}


def transformers_side(model_dir: str, batch: int, prompt_len: int, new_tokens: int, threads: int):
    """benchmarks/sides.py factory: builds the seeded model, saves it to `model_dir` for our side,
    and times transformers `generate`; run() -> seconds."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    model = build_model(model_dir)
    rng = np.random.RandomState(0)

    def run():
        prompts = torch.tensor(rng.randint(0, CONFIG["vocab_size"], (batch, prompt_len)))
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=True, temperature=1.0,
                                 top_k=0, top_p=1.0, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 eos_token_id=None, pad_token_id=0)
        dt = time.perf_counter() - t0
        assert out.shape[1] == prompt_len + new_tokens
        return dt

    run()  # warm-up
    return run, {"torch": torch.__version__, "threads": torch.get_num_threads(),
                 "capability": torch.backends.cpu.get_cpu_capability()}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.lengths == "longtail":  # ours against ours: one process
        from coderl_jax.cpu_runtime import tune_cpu_runtime

        tuning = {} if args.no_cpu_tuning else tune_cpu_runtime()  # before JAX starts its threads
        return longtail(args, tuning)
    from sides import Sides, cpu_model, isa_env

    b, p, n_new = args.batch, args.prompt_len, args.new_tokens
    times: dict[str, list[float]] = {"transformers": [], "ours": []}
    with tempfile.TemporaryDirectory() as tmp:
        sides_spec = {  # transformers first: it saves the model our side loads
            "transformers": ("sampler:transformers_side", {"model_dir": tmp, "batch": b, "prompt_len": p,
                                                           "new_tokens": n_new, "threads": args.threads}),
            "ours": ("sampler:ours_side", {"model_dir": tmp, "batch": b, "prompt_len": p, "new_tokens": n_new,
                                           "chunk": args.chunk, "unroll": args.unroll,
                                           "cache_dtype": args.cache_dtype})}
        with Sides(sides_spec, cpu_tuning=not args.no_cpu_tuning, env=isa_env(args.isa)) as sides:
            for r in range(args.repeats):
                for name in sides.order(r):
                    times[name].append(sides.run(name, seed=r + 1) if name == "ours" else sides.run(name))
            info = sides.info
            sweep = []
            if not args.no_sweep:
                print("batch  tokens/s  kv-cache MiB  compile s")
                for batch in [int(x) for x in args.sweep.split(",") if x]:
                    first = sides.run("ours", batch=batch)  # compiles unless this batch size ran above
                    runs = [sides.run("ours", batch=batch, seed=r + 1) for r in range(max(1, args.repeats - 1))]
                    tps = batch * n_new / statistics.median(runs)
                    mib = sides.run("ours", batch=batch, kind="cache_mib")
                    sweep.append({"batch": batch, "tokens_per_s": round(tps), "kv_cache_mib": round(mib, 2),
                                  "compile_s": round(first - min(runs), 2)})
                    print(f"{batch:5d}  {tps:8.0f}  {mib:12.2f}  {first - min(runs):9.1f}")
    t_ours, t_hf = times["ours"], times["transformers"]
    ours_tps = b * n_new / statistics.median(t_ours)
    hf_tps = b * n_new / statistics.median(t_hf)
    hf, us = info["transformers"], info["ours"]
    isa = " (capped to AVX2 on both sides: a proxy)" if args.isa == "avx2" else ""
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores){isa}; batch {b}, prompt {p}, {n_new} new tokens, T=1; "
          f"jax {us['jax']} on {us['platform']}, torch {hf['torch']} ({hf['capability']}) with {hf['threads']} "
          f"threads; each side in its own process")
    print(f"ours:         {ours_tps:9.0f} new tokens/s  (runs {', '.join(f'{t:.3f}' for t in t_ours)} s)")
    print(f"transformers: {hf_tps:9.0f} new tokens/s  (runs {', '.join(f'{t:.3f}' for t in t_hf)} s)")
    best = min(t_hf) / min(t_ours)  # fastest run of each: less sensitive to a busy machine
    print(f"ratio:        {ours_tps / hf_tps:9.2f}x  (of medians; {best:.2f}x of the fastest runs)   "
          f"compile (not counted): {us['compile_s']:.1f} s")
    result = {"cpu": cpu_model(), "isa": args.isa, "batch": b, "prompt_len": p, "new_tokens": n_new,
              "ours_tokens_per_s": round(ours_tps), "transformers_tokens_per_s": round(hf_tps),
              "ratio": round(ours_tps / hf_tps, 3), "ratio_fastest_runs": round(best, 3),
              "compile_s": us["compile_s"], "cache_dtype": args.cache_dtype, "cpu_tuning": not args.no_cpu_tuning,
              "runs_s": {k: [round(t, 4) for t in v] for k, v in times.items()}}
    if sweep:
        result["sweep"] = sweep
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
