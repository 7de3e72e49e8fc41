"""The paper's ablation in miniature: GRPO vs CodeRL+ (with the official, the likelihood or the
per-variable alignment reward, or with GRPO's code prompts and the alignment prompts on top) vs
alignment only, from one warm start.

    coderl ablate [--config F] [--arms grpo,coderl,align_only] [--seeds 0,1,2] [--steps N]
                  [--out runs/ablation] [--eval-samples 4] [key=value ...]

Every (arm, seed) is a `coderl train` run of the config with the arm's switches, the seed and the
steps; then its last checkpoint is evaluated on the held-out split (`data.eval_path`):

    pass@1           unbiased pass@1 over `--eval-samples` samples per problem at
                     `--eval-temperature` (coderl_jax.eval, sandboxed unit tests)
    code reasoning   greedy: the final output of an unseen reference program on its first input
                     (its shortest with `alignment.record_input=shortest`)
                     (alignment/reasoning.py); `state (items)` = the share of traced items right,
                     `state (all items)` = every traced item right
    test output      greedy: the expected output of an unseen problem for its first input, no program

The warm start (the config's model) is evaluated the same way. Results are mean ± std over seeds
in `<out>/ablation.md` (a markdown table), `<out>/ablation.json` and `<out>/ablation.png`, with
each arm's difference from GRPO and its standard error, paired by seed and by held-out problem, and
the seeds per arm each difference would need to stand two standard errors from zero. Each
finished run keeps its `result.json`, so rerunning the command resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

log = logging.getLogger("coderl_jax.ablation")

ARMS = {
    "grpo": ["alignment.mode=off"],
    "coderl": ["alignment.mode=coderl"],  # the official alignment reward
    "coderl_likelihood": ["alignment.mode=coderl", "alignment.reward=likelihood"],
    "coderl_per_variable": ["alignment.mode=coderl", "alignment.per_variable_credit=true"],
    "coderl_equal_code": lambda base: equal_code_overrides(base),
    "align_only": ["alignment.mode=only"],
}
BASELINE = "grpo"  # the arm the others are compared with, paired by seed and by problem
COLUMNS = (("pass@1", "held-out pass@1"), ("code_reasoning", "code reasoning"), ("item_accuracy", "state (items)"),
           ("state_accuracy", "state (all items)"), ("test_output", "test output"))


def equal_code_overrides(base) -> list[str]:
    """CodeRL+ with the code prompts of GRPO: the base config's `prompts_per_step` stay code prompts
    and the alignment prompts come on top, as many as `alignment.alpha` gives (8 code prompts at
    alpha 0.6: 5 alignment prompts, 13 per step; alpha becomes 8/13). Each step then rolls out
    more rows than the other arms, which is the point: the code side is not reduced."""
    n_code = base.rollout.prompts_per_step
    alpha = base.alignment.alpha
    n_align = max(1, int(round(n_code * (1 - alpha) / alpha))) if alpha > 0 else n_code
    total = n_code + n_align
    return ["alignment.mode=coderl", f"rollout.prompts_per_step={total}", f"alignment.alpha={n_code / total!r}"]


def arm_config(config_path: str, arm: str, seed: int, out_dir: Path, steps: int | None, overrides: list[str]):
    """The run of `arm` with `seed`: the base config (a preset name or a file) with the overrides, its
    data prepared (the held-out scoring reads `data.eval_path` before any training)."""
    from coderl_jax.train.config_util import apply_overrides, load_config
    from coderl_jax.train.data_setup import prepare_data

    switches = ARMS[arm]
    if callable(switches):
        switches = switches(apply_overrides(load_config(config_path), list(overrides)))
    extra = [*overrides, *switches, f"seed={seed}", f"out_dir={out_dir}"]
    if steps is not None:
        extra.append(f"steps={steps}")
    return prepare_data(apply_overrides(load_config(config_path), extra).validate())


def heldout_scores(cfg, model: Path, out_dir: Path, *, samples: int, temperature: float, seed: int) -> dict:
    """pass@1 and the reasoning accuracies of `model` (an HF dir or a checkpoints root) on the
    config's held-out problems."""
    from coderl_jax.alignment.reasoning import reasoning_accuracy, reference_records
    from coderl_jax.data.chat import render_prompt
    from coderl_jax.data.readers import read_problems
    from coderl_jax.eval import evaluate, load_benchmark, load_model, settings_for
    from coderl_jax.eval.runner import SAMPLES_FILE, read_records
    from coderl_jax.models.tiny import default_model_dir
    from coderl_jax.sampling.sampler import SamplingParams
    from coderl_jax.train.loop import make_tracer

    if str(model) == "tiny-random":
        model = default_model_dir()
    length = cfg.data.max_prompt_tokens + cfg.rollout.max_new_tokens
    generator = load_model(model, max_cache_len=length)
    tracer = make_tracer(cfg)
    try:
        items = load_benchmark("problems", cfg.data.eval_path, limit=cfg.eval.max_problems)
        settings = settings_for("problems", n=samples, k=(1,), temperature=temperature,
                                max_new_tokens=cfg.rollout.max_new_tokens, seed=seed, raw_prompt=cfg.data.raw_prompts,
                                system=cfg.data.system_prompt, timeout_s=cfg.tracer.timeout_s, batch_size=64)
        summary = evaluate("problems", items, generator, tracer, out_dir, settings, data_path=cfg.data.eval_path,
                           progress=False)
        problems, _ = read_problems(cfg.data.eval_path)
        rule = cfg.alignment.record_input
        pairs = reference_records(problems[: cfg.eval.max_problems], tracer, k=cfg.alignment.k, record_input=rule)
        tok = generator.tokenizer

        def generate(texts):
            ids = [tok.encode(render_prompt(t, tok, system=cfg.data.system_prompt, raw=cfg.data.raw_prompts),
                              add_special_tokens=False)[-cfg.data.max_prompt_tokens:] for t in texts]
            sp = SamplingParams(n=1, max_new_tokens=cfg.rollout.max_new_tokens, temperature=0.0, seed=seed)
            return [g[0].text for g in generator.sampler.generate(ids, sp)]

        scores = {"pass@1": float(summary["pass@1"]), "problems": len(items)}
        scores.update(reasoning_accuracy(generate, pairs, record_input=rule))
        per_problem = scores.setdefault("per_problem", {})
        for pid, rec in read_records(Path(out_dir) / "problems" / SAMPLES_FILE).items():
            per_problem.setdefault(pid, {})["pass@1"] = rec["num_correct"] / rec["num_samples"]
        return scores
    finally:
        if hasattr(tracer, "close"):
            tracer.close()


def mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def aggregate(results: dict[str, list[dict]]) -> dict[str, dict[str, tuple[float, float]]]:
    return {arm: {key: mean_std([r[key] for r in runs if key in r]) for key, _ in COLUMNS
                  if any(key in r for r in runs)} for arm, runs in results.items() if runs}


def mean_se(values: list[float]) -> tuple[float, float | None, int]:
    """(mean, standard error of the mean (None for one value), count)."""
    arr = np.asarray(values, np.float64)
    return float(arr.mean()), (float(arr.std(ddof=1) / np.sqrt(len(arr))) if len(arr) > 1 else None), len(arr)


def paired_differences(results: dict[str, list[dict]], base: str = BASELINE) -> dict:
    """arm -> column -> {"by_seed": (mean, se, n), "by_problem": (mean, se, n)}: the arm minus `base`.
    By seed: one difference per seed run by both. By problem: per held-out problem, the difference
    averaged over those seeds (from each result's `per_problem`), then mean and standard error over
    the problems."""
    if base not in results:
        return {}
    out: dict = {}
    for arm, runs in results.items():
        if arm in (base, "warm start") or not runs:
            continue
        cols: dict = {}
        for key, _ in COLUMNS:
            pairs = [(a, b) for a, b in zip(runs, results[base]) if key in a and key in b]
            if not pairs:
                continue
            entry = {"by_seed": mean_se([a[key] - b[key] for a, b in pairs])}
            per_problem: dict[str, list[float]] = {}
            for a, b in pairs:
                pa, pb = a.get("per_problem") or {}, b.get("per_problem") or {}
                for pid in pa.keys() & pb.keys():
                    if key in pa[pid] and key in pb[pid]:
                        per_problem.setdefault(pid, []).append(pa[pid][key] - pb[pid][key])
            if per_problem:
                entry["by_problem"] = mean_se([float(np.mean(v)) for v in per_problem.values()])
            cols[key] = entry
        out[arm] = cols
    return out


def seeds_needed(paired: dict, effect: float = 0.01) -> dict:
    """arm -> column -> {"observed": seeds, "effect": seeds}: how many seeds per arm would put the
    by-seed paired difference two standard errors from zero, at the difference observed and at
    `effect` (1 point), with the per-seed spread observed: n = (2 sd / difference)^2, at least 2
    (left out where one seed gives no spread; inf for an observed difference of zero)."""
    out: dict = {}
    for arm, cols in paired.items():
        for key, entry in cols.items():
            mean, se, n = entry["by_seed"]
            if se is None:
                continue
            sd = se * math.sqrt(n)
            seen = abs(mean) > 1e-9  # a zero difference summed from floats is ~1e-17, not a difference
            out.setdefault(arm, {})[key] = {"observed": _ceil((2 * sd / abs(mean)) ** 2) if seen else math.inf,
                                            "effect": _ceil((2 * sd / effect) ** 2)}
    return out


def _ceil(x: float) -> int:
    """Seeds, at least 2 (a standard error needs two); 2.0000000001 from rounding is 2, not 3."""
    return max(2, math.ceil(x - 1e-9))


def _pm(mean: float, se: float | None) -> str:
    return f"{100 * mean:+.1f}" + (f" ± {100 * se:.1f}" if se is not None else "")


def markdown(agg: dict, seeds: list[int], steps, paired: dict | None = None, needed: dict | None = None) -> str:
    head = "| arm | " + " | ".join(label for _, label in COLUMNS) + " |"
    lines = [f"Held-out split, mean ± std over seeds {seeds} ({steps} steps per run).", "", head,
             "|---|" + "---|" * len(COLUMNS)]
    for arm, cols in agg.items():
        cells = [f"{100 * cols[k][0]:.1f} ± {100 * cols[k][1]:.1f}" if k in cols else "—" for k, _ in COLUMNS]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    if paired:
        lines += ["", f"Difference from {BASELINE} in points, ± its standard error: paired by seed / paired by "
                  "held-out problem (averaged over seeds).", "", head, "|---|" + "---|" * len(COLUMNS)]
        for arm, cols in paired.items():
            cells = [(_pm(*cols[k]["by_seed"][:2]) + " / " + (_pm(*cols[k]["by_problem"][:2])
                                                              if "by_problem" in cols[k] else "—"))
                     if k in cols else "—" for k, _ in COLUMNS]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    if needed:
        lines += ["", f"Seeds per arm for the difference from {BASELINE} (paired by seed) to stand two standard "
                  "errors from zero, with the per-seed spread seen here: at the difference observed / at 1 point.",
                  "", head, "|---|" + "---|" * len(COLUMNS)]
        for arm, cols in needed.items():
            cells = [f"{_count(cols[k]['observed'])} / {_count(cols[k]['effect'])}" if k in cols else "—"
                     for k, _ in COLUMNS]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _count(n: float) -> str:
    return "never" if n == math.inf else f"{n:,}"


def plot(agg: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(agg)
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=100)
    width = 0.8 / max(len(arms), 1)
    x = np.arange(len(COLUMNS))
    for i, arm in enumerate(arms):
        means = [100 * agg[arm].get(k, (0.0, 0.0))[0] for k, _ in COLUMNS]
        stds = [100 * agg[arm].get(k, (0.0, 0.0))[1] for k, _ in COLUMNS]
        ax.bar(x + (i - (len(arms) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=arm)
    ax.set_xticks(x, [label for _, label in COLUMNS], fontsize=8)
    ax.set_ylabel("% (held-out)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_ablation(config_path: str, *, arms: list[str], seeds: list[int], out: Path, steps: int | None,
                 overrides: list[str], eval_samples: int = 4, eval_temperature: float = 0.2,
                 train_fn=None, score_fn=None) -> dict:
    from coderl_jax.train.loop import train as default_train

    train_fn = train_fn or default_train
    score_fn = score_fn or heldout_scores
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; choose from {sorted(ARMS)}")
    results: dict[str, list[dict]] = {"warm start": []}
    for seed in seeds:
        cfg = arm_config(config_path, arms[0], seed, out / "warm_start" / f"seed_{seed}", steps, overrides)
        results["warm start"].append(_cached(out / "warm_start" / f"seed_{seed}" / "result.json", lambda: score_fn(
            cfg, Path(cfg.model), out / "warm_start" / f"seed_{seed}" / "eval", samples=eval_samples,
            temperature=eval_temperature, seed=seed)))
    for arm in arms:
        results[arm] = []
        for seed in seeds:
            run_dir = out / arm / f"seed_{seed}"
            cfg = arm_config(config_path, arm, seed, run_dir, steps, overrides)

            def compute(cfg=cfg, run_dir=run_dir, seed=seed):
                log.info("ablation: %s seed %d -> %s", cfg.alignment.mode, seed, run_dir)
                train_fn(cfg)
                return score_fn(cfg, run_dir / "checkpoints", run_dir / "heldout", samples=eval_samples,
                                temperature=eval_temperature, seed=seed)

            results[arm].append(_cached(run_dir / "result.json", compute))
    agg = aggregate(results)
    paired = paired_differences(results)
    needed = seeds_needed(paired)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(agg, seeds, steps if steps is not None else "config", paired, needed)
    (out / "ablation.md").write_text(table)
    (out / "ablation.json").write_text(json.dumps({"seeds": seeds, "steps": steps, "runs": results,
                                                   "mean_std": agg, "vs_" + BASELINE: paired,
                                                   "seeds_needed": _jsonable(needed)}, indent=2) + "\n")
    plot(agg, out / "ablation.png")
    return {"table": table, "aggregate": agg, "paired": paired, "runs": results}


def _jsonable(needed: dict) -> dict:
    return {arm: {k: {w: (None if n == math.inf else n) for w, n in v.items()} for k, v in cols.items()}
            for arm, cols in needed.items()}


def _cached(path: Path, compute) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
    return result
