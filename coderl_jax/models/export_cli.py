"""`coderl export --model SRC --out DIR [--dtype bfloat16]`: write a Hugging Face directory.

SRC is either
- a Hugging Face directory (config.json + *.safetensors), e.g. to change the stored dtype; or
- a training checkpoint step, e.g. <out_dir>/checkpoints/<step> (or the checkpoints root, meaning
  its latest step); format in `coderl_jax.models.checkpoint`:

      SRC/params/             the params dict, orbax StandardSave
      SRC/model_config.json   ModelConfig.to_hf(), or in SRC's parent (config.json accepted too)
      SRC/<tokenizer files>   optional

The output (config.json, safetensors shards + index, generation_config.json, tokenizer files from
--tokenizer or SRC) loads with transformers' AutoModelForCausalLM.from_pretrained and vLLM.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from coderl_jax.models.config import DTYPES, ConfigError

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str) -> int:
    """'5GB', '500MiB', '1000000' -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 5GB, 500MiB, 1000000)")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").upper()])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path,
                        help="a Hugging Face directory or a training params checkpoint")
    parser.add_argument("--out", required=True, type=Path, help="the Hugging Face directory to write")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                        help="stored dtype (default: float32)")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="directory to copy tokenizer files and generation_config.json from (default: --model)")
    parser.add_argument("--max-shard-size", type=parse_size, default="4GiB", help="largest safetensors file")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def main(args: argparse.Namespace) -> int:
    from coderl_jax.models import checkpoint, hf_io

    try:
        step_dir = checkpoint.resolve_step_dir(args.model)
        if step_dir is not None:
            cfg, params = checkpoint.load_params(step_dir, param_dtype=args.dtype)
        elif (args.model / hf_io.CONFIG_FILE).exists():
            cfg, params = hf_io.load_hf(args.model, param_dtype=args.dtype)
        else:
            raise hf_io.CheckpointError(f"{args.model}: neither a Hugging Face directory (no config.json) "
                                        f"nor a params checkpoint (no {checkpoint.PARAMS_DIR}/)")
        tokenizer_dir = args.tokenizer or hf_io.find_tokenizer_dir(step_dir or args.model)
        out = hf_io.save_hf(cfg, params, args.out, tokenizer_dir=tokenizer_dir,
                            max_shard_bytes=args.max_shard_size, dtype=args.dtype, overwrite=args.overwrite)
    except (ConfigError, hf_io.CheckpointError, FileExistsError) as e:
        print(f"coderl export: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({cfg.family}, {cfg.num_params() / 1e6:.1f}M parameters)")
    return 0
