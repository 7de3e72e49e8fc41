"""`coderl generate --model DIR --prompt TEXT [...]`: sample completions from a Hugging Face directory.

With --json it prints exactly one JSON object:
{"completions": [{"text": ..., "token_ids": [...], "logprobs": [...], "finish_reason": ...}]}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None,
                        help="Hugging Face directory (config.json, safetensors, tokenizer files); "
                             "default: a tiny random demo model")
    parser.add_argument("--prompt", required=True, help="prompt text (used as is, no chat template)")
    parser.add_argument("--n", type=int, default=1, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=1.0, help="0 means greedy")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0, help="0: no top-k")
    parser.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-cache-len", type=int, default=None,
                        help="prompt + new tokens limit (default: the model's max_position_embeddings)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    from coderl_jax.models.hf_io import load_hf, load_tokenizer
    from coderl_jax.sampling.sampler import Sampler, SamplingParams

    if args.model is None:
        from coderl_jax.models.tiny import default_model_dir
        args.model = default_model_dir()
    try:
        sp = SamplingParams(n=args.n, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                            top_p=args.top_p, top_k=args.top_k, stop=tuple(args.stop), seed=args.seed)
        cfg, params = load_hf(args.model)
        tokenizer = load_tokenizer(args.model)
        sampler = Sampler(cfg, params, tokenizer, max_cache_len=args.max_cache_len)
        (completions,) = sampler.generate([args.prompt], sp)
    except ValueError as e:  # ConfigError / CheckpointError / bad sampling settings / prompt too long
        print(f"coderl generate: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"completions": [c.to_json() for c in completions]}))
        return 0
    for i, c in enumerate(completions):
        if len(completions) > 1:
            print(f"--- sample {i} ({c.finish_reason}, {len(c.token_ids)} tokens)")
        print(c.text)
    return 0
