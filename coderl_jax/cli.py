"""`coderl` command line: one subcommand per job; each lives beside the code it drives.

A subcommand module exposes `add_arguments(parser)` and `main(args) -> int`; modules are imported
only when their subcommand runs, so `coderl --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "train": ("coderl_jax.train.cli", "GRPO training (resumes from the last checkpoint in out_dir)"),
    "ablate": ("coderl_jax.train.ablation", "GRPO vs CodeRL+ vs alignment only, several seeds, held-out table"),
    "sft": ("coderl_jax.train.sft_cli", "supervised warm start: a small policy + tokenizer as a Hugging Face directory"),
    "generate": ("coderl_jax.sampling.cli", "sample completions from a model"),
    "export": ("coderl_jax.models.export_cli", "write parameters as a Hugging Face directory"),
    "eval": ("coderl_jax.eval.cli", "pass@k on HumanEval, MBPP, LeetCode, LiveCodeBench and CRUXEval files"),
    "plan": ("coderl_jax.train.plan", "compile a config ahead of time for a TPU topology: per-chip memory, fits or not, FLOPs per step"),
}


def main(argv: list[str] | None = None) -> int:
    from coderl_jax.cpu_runtime import tune_cpu_runtime

    tune_cpu_runtime()  # before any subcommand starts JAX's threads (a no-op off CPU)
    parser = argparse.ArgumentParser(prog="coderl", description="CodeRL+ in JAX")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    modules = {}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == chosen:  # import only the module that will run
            modules[name] = importlib.import_module(module_name)
            modules[name].add_arguments(p)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(modules[args.command].main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
