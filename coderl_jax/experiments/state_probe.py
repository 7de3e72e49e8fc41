"""How well a policy predicts the runtime state of programs it never saw (the warm start's gate).

    python -m coderl_jax.experiments.state_probe MODEL_DIR [--n 100] [--out FILE.json]

Two sets of programs from the embedded suite's held-out split (problems no warm start trains on):

- `reference`: the first `n` held-out problems' reference solutions, each on its first test input
  (or its shortest with `--record-input shortest`; the programs of the default run's probe);
- `own_failures`: the policy's own greedy programs for the held-out problems that fail their tests
  but run and print, harvested the way RL harvests failed rollouts (first `n`).

Each set is answered greedily (the probe's decoding) and at temperature 1, and scored with the
official rule: answers parsed, items right (the output and the K target variables), all items right.
Greedy held-out pass@1 of the code task is reported beside it. The last line printed is the JSON
written to `--out`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path


def own_failure_records(sampler, tokenizer, pool, problems, *, n: int, k: int, max_new_tokens: int,
                        record_input: str = "first", max_value_chars: int = 200,
                        max_output_chars: int = 0) -> tuple[list, dict]:
    """(records from the policy's failed greedy programs, the code scores of those programs)."""
    from coderl_jax.sft.scoring import failed_program_records

    records, info = failed_program_records(sampler, tokenizer, pool, problems, k=k, max_new_tokens=max_new_tokens,
                                           record_input=record_input, max_value_chars=max_value_chars,
                                           max_output_chars=max_output_chars)
    return records[:n], {"problems": len(problems), "pass@1": info["pass@1"], "harvest": info["harvest"]}


def probe_model(model_dir: str | Path, *, n: int = 100, k: int = 3, suite_seed: int = 0, n_heldout: int = 300,
                max_new_tokens: int = 384, workers: int = 2, seed: int = 0, record_input: str = "first",
                max_value_chars: int = 200, max_output_chars: int = 0) -> dict:
    from tracer import TracerPool

    from coderl_jax.data import suite
    from coderl_jax.models.hf_io import load_hf, load_tokenizer
    from coderl_jax.sampling.sampler import Sampler
    from coderl_jax.sft.scoring import alignment_scores
    from coderl_jax.sft.trainer import alignment_records

    cfg, params = load_hf(model_dir)
    tokenizer = load_tokenizer(model_dir)
    sampler = Sampler(cfg, params, tokenizer)
    heldout = suite.generate_suite(suite_seed, n_heldout=n_heldout)["heldout"]
    t0 = time.perf_counter()
    filters = {"record_input": record_input, "max_value_chars": max_value_chars, "max_output_chars": max_output_chars}
    result: dict = {"model": str(model_dir), "suite_seed": suite_seed, "k": k, "max_new_tokens": max_new_tokens,
                    **filters}
    with TracerPool(workers=workers) as pool:
        # the first n held-out programs that pass the filters (all of the first n without them)
        reference = alignment_records(pool, heldout if max_output_chars > 0 else heldout[:n], k=k, seed=1, **filters)
        sets = {"reference": reference[0][:n]}
        sets["own_failures"], result["code"] = own_failure_records(sampler, tokenizer, pool, heldout, n=n, k=k,
                                                                   max_new_tokens=max_new_tokens, **filters)
    for name, records in sets.items():
        result[name] = {"greedy": alignment_scores(sampler, tokenizer, records, max_new_tokens=max_new_tokens),
                        "t1": alignment_scores(sampler, tokenizer, records, max_new_tokens=max_new_tokens,
                                               temperature=1.0, seed=seed)}
    both = sets["reference"] + sets["own_failures"]
    result["all"] = {key: {"records": len(both),
                           "item_accuracy": sum(result[s][key]["item_accuracy"] * len(sets[s]) for s in sets if sets[s])
                           / max(len(both), 1)} for key in ("greedy", "t1")}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m coderl_jax.experiments.state_probe", description=__doc__.split("\n")[0])
    ap.add_argument("model", help="a model directory (Hugging Face layout, as `coderl sft` writes)")
    ap.add_argument("--n", type=int, default=100, help="programs per set (default 100)")
    ap.add_argument("--k", type=int, default=3, help="target variables per program")
    ap.add_argument("--suite-seed", type=int, default=0)
    ap.add_argument("--max-new-tokens", type=int, default=384)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--record-input", choices=("first", "shortest"), default="first",
                    help="the test input each record runs on (alignment.record_input)")
    ap.add_argument("--max-value-chars", type=int, default=200,
                    help="targets whose value renders longer are not asked about (alignment.max_value_chars)")
    ap.add_argument("--max-output-chars", type=int, default=0,
                    help="programs whose output is longer are left out (alignment.max_output_chars; 0: no limit)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    if not (Path(a.model) / "config.json").is_file():
        print(f"error: {a.model}: not a model directory (no config.json)", file=sys.stderr)
        return 2
    if a.n < 1:
        print(f"error: --n={a.n} must be >= 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    result = probe_model(a.model, n=a.n, k=a.k, suite_seed=a.suite_seed, max_new_tokens=a.max_new_tokens,
                         workers=a.workers, record_input=a.record_input, max_value_chars=a.max_value_chars,
                         max_output_chars=a.max_output_chars)
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    print(f"held-out greedy pass@1 {pct(result['code']['pass@1'])} over {result['code']['problems']} problems")
    for name in ("reference", "own_failures"):
        for key in ("greedy", "t1"):
            s = result[name][key]
            print(f"{name:12s} {key:6s} records {s['records']:4d}  parsed {pct(s.get('parsed'))}  "
                  f"items right {pct(s.get('item_accuracy'))}  all right {pct(s.get('exact'))}")
    line = json.dumps(result)
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
