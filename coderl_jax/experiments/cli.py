"""`coderl ablate`: the command line of the ablation runner (coderl_jax.experiments.ablation)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from coderl_jax.experiments.ablation import ARMS, run_ablation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coderl_jax.train.config_util import DEFAULT_CONFIG

    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help=f"the base config: a preset name or a config file (default: {DEFAULT_CONFIG})")
    parser.add_argument("--arms", default="grpo,coderl,align_only", help=f"comma-separated, from {sorted(ARMS)}")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated integer seeds")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default: the config's)")
    parser.add_argument("--out", default="runs/ablation", help="output directory (a rerun resumes)")
    parser.add_argument("--eval-samples", type=int, default=4, help="samples per held-out problem for pass@1")
    parser.add_argument("--eval-temperature", type=float, default=0.2)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every run")


def main(args) -> int:
    from coderl_jax.train.config_util import ConfigOverrideError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        arms = [a.strip() for a in args.arms.split(",") if a.strip()]
        if not seeds or not arms:
            raise ValueError("--seeds and --arms must not be empty")
        out = run_ablation(args.config, arms=arms, seeds=seeds, out=Path(args.out), steps=args.steps,
                           overrides=list(args.overrides), eval_samples=args.eval_samples,
                           eval_temperature=args.eval_temperature)
    except (ConfigOverrideError, ValueError) as e:
        print(f"coderl ablate: {e}", file=sys.stderr)
        return 2
    print(out["table"])
    print(f"written: {Path(args.out) / 'ablation.md'}, {Path(args.out) / 'ablation.json'}, "
          f"{Path(args.out) / 'ablation.png'}")
    return 0

