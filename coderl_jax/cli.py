"""`coderl` command line: one subcommand per job; each lives beside the code it drives.

A subcommand module exposes `add_arguments(parser)` and `main(args) -> int`; modules are imported
only when their subcommand runs, so `coderl --help` stays fast.

A mistake in what the user gave (a bad data row, a wrong override, a missing file: see
`user_error_message`) ends the command with one line, `coderl <command>: <message>`, on stderr and
exit status 2; `coderl --traceback <command> ...` or CODERL_TRACEBACK=1 shows the full trace instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

SUBCOMMANDS = {
    "train": ("coderl_jax.train.cli", "GRPO training (resumes from the last checkpoint in out_dir)"),
    "ablate": ("coderl_jax.experiments.cli", "GRPO vs CodeRL+ vs alignment only, several seeds, held-out table"),
    "sft": ("coderl_jax.sft.cli", "supervised warm start: a small policy + tokenizer as a Hugging Face directory"),
    "generate": ("coderl_jax.sampling.cli", "sample completions from a model"),
    "export": ("coderl_jax.models.export_cli", "write parameters as a Hugging Face directory"),
    "eval": ("coderl_jax.eval.cli", "pass@k on HumanEval, MBPP, LeetCode, LiveCodeBench and CRUXEval files"),
    "plan": ("coderl_jax.plan.cli", "compile a config ahead of time for a TPU topology: per-chip memory, fits or not, FLOPs per step"),
}


def enable_compile_cache() -> str | None:
    """Keep XLA's compiled programs on disk, so a second run (a resumed or repeated `coderl train`,
    every arm of `coderl ablate`) skips the compiles that took more than a second: the sampler's
    and the train step's, the slowest part of starting a short run on a CPU. The cache is keyed by
    the program and the compiler's settings, so it never changes a result.

    Where: $CODERL_COMPILE_CACHE, else $CODERL_CACHE/xla (default ~/.cache/coderl_jax/xla);
    CODERL_COMPILE_CACHE=0 turns it off. Returns the directory (None when off)."""
    import os

    path = os.environ.get("CODERL_COMPILE_CACHE", "")
    if path == "0":
        return None
    if not path:
        from coderl_jax.cache import cache_root

        path = str(cache_root() / "xla")
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return path


def prepare_process() -> dict:
    """Process settings, before anything imports JAX: the platform (JAX_PLATFORMS=cpu where no TPU or
    GPU is attached and the user chose none, so that an installed libtpu stays silent on a CPU
    machine), then the CPU allocator tuning (which reads that choice). Returns what was set."""
    from coderl_jax.cpu_runtime import select_platform, tune_cpu_runtime

    platform = select_platform()
    tuning = tune_cpu_runtime()  # before any subcommand starts JAX's threads (a no-op off CPU)
    return {"platform": platform, "cpu_tuning": tuning}


def main(argv: list[str] | None = None) -> int:
    prepare_process()
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    if chosen != "plan":  # the plan compiles for a TPU topology with no TPU client: nothing to reload
        enable_compile_cache()
    parser = argparse.ArgumentParser(prog="coderl", description="CodeRL+ in JAX")
    parser.add_argument("--traceback", action="store_true",
                        help="on an error in the input, show the full trace, not one line (also CODERL_TRACEBACK=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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
    try:
        return int(modules[args.command].main(args) or 0)
    except Exception as e:
        message = None if args.traceback or os.environ.get("CODERL_TRACEBACK") == "1" else user_error_message(e)
        if message is None:
            raise
        print(f"coderl {args.command}: {message}", file=sys.stderr)
        return 2


def user_error_message(e: BaseException) -> str | None:
    """One line for an exception caused by the user's input, None for any other (a bug: its trace
    is shown). The user's: a `coderl_jax.errors.UserError` (DataError, PlanError, ConfigError,
    CheckpointError, ResumeError, MeshError, ConfigOverrideError, SFTError) and a missing, unreadable or
    mistyped path (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)."""
    from coderl_jax.errors import UserError

    if isinstance(e, UserError):
        message = str(e)
    elif isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)) and e.filename:
        message = f"{e.filename}: {e.strerror}"
    else:
        return None
    return "; ".join(line.strip() for line in message.splitlines() if line.strip()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
