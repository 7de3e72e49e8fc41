"""`coderl train [--config PRESET|FILE] [key=value ...]`: run or resume GRPO training."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from coderl_jax.train.config_util import DEFAULT_CONFIG

PRESET_HELP = ("default_cpu", "tiny_cpu", "grpo_cpu")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help=f"a preset name ({', '.join(PRESET_HELP)}, ...; the paper-scale qwen25_coder_*) or "
                             f"a Python config file defining `config` (default: {DEFAULT_CONFIG})")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="typed overrides of config fields, e.g. steps=20 optim.learning_rate=1e-5")
    parser.add_argument("--print-config", action="store_true",
                        help="print the config (with overrides) and exit; suite data paths are filled when the run starts")


def main(args) -> int:
    import dataclasses
    import json
    import sys

    from coderl_jax.train.config_util import ConfigOverrideError, apply_overrides, load_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax's per-save chatter
    try:
        cfg = apply_overrides(load_config(args.config), args.overrides).validate()
    except (ConfigOverrideError, ValueError) as e:
        print(f"coderl train: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(dataclasses.asdict(cfg), indent=2))
        return 0
    from coderl_jax.parallel import init_distributed

    init_distributed()  # a no-op on one host; first, before anything else touches JAX
    from coderl_jax.train.loop import checkpoint_location, train

    last = train(cfg)  # writes the suite a preset describes into the cache first
    import jax

    if jax.process_index() != 0:  # process 0 owns the run's files: the report is its job
        return 0
    if last:
        from coderl_jax.train.report import report

        table, plots = report(cfg.out_dir)
        print(table)
        if plots:
            print("plots: " + ", ".join(str(p) for p in plots))
        keys = [k for k in ("reward/mean", "reward/pass_rate", "actor/loss", "actor/kl_loss", "eval/pass@1") if k in last]
        print("final step " + str(last.get("step")) + ": " + ", ".join(f"{k}={last[k]:.4f}" for k in keys))
    print(f"metrics: {Path(cfg.out_dir) / 'metrics.jsonl'}; checkpoints: {checkpoint_location(cfg)}")
    return 0
