"""The evaluation loop: generate, score, record per problem as it goes, summarise.

Output, under `out_dir`:

    <benchmark>/config.json    what produced the samples (checked on resume)
    <benchmark>/samples.jsonl  one line per problem, appended as chunks finish
    <benchmark>/summary.json   pass@k and breakdowns for this benchmark
    summary.json               {"benchmarks": {name: that summary, ...}} for every benchmark in out_dir
    summary.md                 the same as a markdown table

Resume: a rerun with the same settings skips the problems already in samples.jsonl (a line cut
short by a kill is dropped and redone). Problems are generated in chunks of `batch_size` over the
benchmark's order, chunk c seeded with seed + its first index, so an interrupted and resumed
run draws the same samples as an uninterrupted one. Scoring of chunk c (tracer, CPU) overlaps
generation of chunk c+1 (accelerator).

The training loop calls `evaluate` (or `run`) with its own Sampler wrapped in a SamplerGenerator
and its tracer pool; see docs/eval.md.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from coderl_jax.errors import UserError
from coderl_jax.eval.benchmarks import EvalItem, get_benchmark, load_benchmark
from coderl_jax.eval.generators import OracleGenerator
from coderl_jax.eval.passk import mean_pass_at_k
from coderl_jax.eval.presets import get_preset
from coderl_jax.eval.scoring import COMPARE_MODES, score_responses

SAMPLES_FILE, CONFIG_FILE, SUMMARY_FILE, TABLE_FILE = "samples.jsonl", "config.json", "summary.json", "summary.md"


class ResumeError(UserError, ValueError):
    """The output directory holds results made with other settings."""


class OutputError(UserError, ValueError):
    """An output directory that evaluation cannot write to (a URL: samples are appended as they are scored)."""


def check_local_output(out_dir) -> None:
    """Evaluation appends samples to a local file as they are scored; a bucket URL (gs://...; also as
    pathlib leaves it, gs:/...) is refused with the way round: write locally, copy afterwards."""
    text = os.fspath(out_dir)
    scheme, sep, _ = text.partition(":/")
    if sep and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        raise OutputError(f"{text}: evaluation writes to a local directory (samples are appended as they are "
                          f"scored); write there and copy it to a bucket afterwards (gcloud storage rsync DIR URL)")


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    n: int = 1  # samples per problem
    k: tuple[int, ...] = (1,)  # pass@k reported (those with k <= n)
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 1024
    seed: int = 0
    raw_prompt: bool = False  # completion-style prompts instead of the chat template
    system: str | None = None  # system prompt (chat mode; items that carry one keep theirs)
    stop: tuple[str, ...] = ()  # extra stop strings
    compare: str = "python"  # reasoning tasks: python | strict | lenient (scoring.py)
    timeout_s: float = 6.0  # per test case in the sandbox
    batch_size: int = 32  # prompts per generate call

    # settings that change the samples or their scores: a resumed run must match them
    RESUME_KEYS = ("n", "temperature", "top_p", "top_k", "max_new_tokens", "seed", "raw_prompt", "system", "stop",
                   "compare", "timeout_s")

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if not self.k or min(self.k) < 1:
            raise ValueError(f"k must be a non-empty list of integers >= 1, got {self.k}")
        if self.compare not in COMPARE_MODES:
            raise ValueError(f"compare must be one of {COMPARE_MODES}, got {self.compare!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (0: greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")

    def resume_key(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()
                if k in self.RESUME_KEYS}


def settings_for(benchmark: str, preset: str | None = None, **overrides) -> EvalSettings:
    """The benchmark's usual settings (n, temperature, top_p, max_new_tokens), then the named
    preset's for it (presets.py; e.g. "paper"), then `overrides` (None values are ignored)."""
    values = dict(get_benchmark(benchmark).defaults)
    if preset is not None:
        values.update(get_preset(preset).settings_of(benchmark))
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "k" in values:
        values["k"] = tuple(values["k"])
    if "stop" in values:
        values["stop"] = tuple(values["stop"])
    return EvalSettings(**values)


# ------------------------------------------------------------------------------------------------
# samples.jsonl


def read_records(path: Path) -> dict[str, dict]:
    """id -> record of a samples file. A last line cut short (killed mid-write) is removed from the
    file; any other unreadable line is an error."""
    records: dict[str, dict] = {}
    if not path.exists():
        return records
    data = path.read_bytes()
    good = 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # partial final line
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise ResumeError(f"{path}: unreadable line at byte {good}; remove the file or use --overwrite") from None
        records[rec["id"]] = rec
        good += len(line)
    if good != len(data):
        with open(path, "r+b") as f:
            f.truncate(good)
    return records


def _append(path: Path, records: Sequence[dict]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())


def _check_config(bench_dir: Path, config: dict, overwrite: bool) -> None:
    config_path, samples_path = bench_dir / CONFIG_FILE, bench_dir / SAMPLES_FILE
    if overwrite:
        for p in (config_path, samples_path, bench_dir / SUMMARY_FILE):
            p.unlink(missing_ok=True)
    if config_path.exists():
        old = json.loads(config_path.read_text())
        flat_old, flat_new = _flatten(old), _flatten(config)
        diffs = [f"{key}: {flat_old.get(key)!r} -> {flat_new.get(key)!r}"
                 for key in sorted(set(flat_old) | set(flat_new)) if flat_old.get(key) != flat_new.get(key)]
        if diffs:
            raise ResumeError(f"{bench_dir} holds results made with other settings ({'; '.join(diffs)}); "
                              f"use another --out or --overwrite")
    elif samples_path.exists() and samples_path.stat().st_size:
        raise ResumeError(f"{samples_path} exists without {CONFIG_FILE}; use another --out or --overwrite")
    bench_dir.mkdir(parents=True, exist_ok=True)
    tmp = config_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.replace(config_path)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


# ------------------------------------------------------------------------------------------------
# the loop


def evaluate(benchmark: str, items: Sequence[EvalItem], generator, tracer, out_dir: str | os.PathLike,
             settings: EvalSettings, *, data_path: str | None = None, progress: bool = True,
             overwrite: bool = False, on_chunk: Callable[[list[dict]], None] | None = None) -> dict:
    """Evaluate `items` of `benchmark` with `generator` (SamplerGenerator / OracleGenerator) and
    `tracer` (TracerPool / TracerClient); returns the benchmark's summary (also written to disk).
    `on_chunk(records)` is called after each chunk's records are on disk."""
    from tqdm.auto import tqdm

    if not items:
        raise ValueError(f"{benchmark}: no problems to evaluate")
    check_local_output(out_dir)
    t_start = time.perf_counter()
    bench_dir = Path(out_dir) / benchmark
    config = {"benchmark": benchmark, "data": str(data_path) if data_path else None,
              "generator": generator.identity, "settings": settings.resume_key()}
    _check_config(bench_dir, config, overwrite)
    samples_path = bench_dir / SAMPLES_FILE
    records = read_records(samples_path)
    size = settings.batch_size
    chunks = [(s, [i for i in range(s, min(s + size, len(items))) if items[i].id not in records])
              for s in range(0, len(items), size)]
    chunks = [(s, c) for s, c in chunks if c]
    pad_to = max((len(c) for _, c in chunks), default=0)
    done_before = sum(1 for it in items if it.id in records)
    timing = collections.Counter()

    def finish(chunk, samples, future):
        t0 = time.perf_counter()
        results = future.result()
        timing["score_wait_s"] += time.perf_counter() - t0
        new = []
        for i, group, res in zip(chunk, samples, results):
            item = items[i]
            new.append({"id": item.id, "index": i, "benchmark": benchmark, "kind": item.kind,
                        "prompt": generator.prompt_text(item, settings),
                        "responses": [s.text for s in group], "finish_reasons": [s.finish_reason for s in group],
                        "num_tokens": [s.num_tokens for s in group], "results": res,
                        "num_samples": len(res), "num_correct": sum(bool(r["passed"]) for r in res),
                        "metadata": item.metadata})
        _append(samples_path, new)
        records.update((r["id"], r) for r in new)
        bar.update(len(new))
        bar.set_postfix(pass1=f"{_running_pass1(items, records):.3f}")
        if on_chunk is not None:
            on_chunk(new)

    with tqdm(total=len(items), initial=done_before, desc=benchmark, unit="problem", disable=not progress,
              dynamic_ncols=True) as bar, ThreadPoolExecutor(max_workers=1) as scorer:
        pending = None
        for start, chunk in chunks:
            chunk_items = [items[i] for i in chunk]
            t0 = time.perf_counter()
            samples = generator.generate(chunk_items, settings, settings.seed + start, batch_size=pad_to)
            timing["generate_s"] += time.perf_counter() - t0
            future = scorer.submit(score_responses, chunk_items, [[s.text for s in g] for g in samples], tracer,
                                   raw=settings.raw_prompt, mode=settings.compare, timeout_s=settings.timeout_s)
            if pending is not None:
                finish(*pending)
            pending = (chunk, samples, future)
        if pending is not None:
            finish(*pending)

    summary = summarize(benchmark, items, records, settings)
    summary.update(generator=generator.identity, data=config["data"],
                   run={"evaluated_now": len(items) - done_before, "resumed_from": done_before,
                        "elapsed_s": round(time.perf_counter() - t_start, 3),
                        "generate_s": round(timing["generate_s"], 3),
                        "score_wait_s": round(timing["score_wait_s"], 3)})
    _write_json(bench_dir / SUMMARY_FILE, summary)
    write_summaries(out_dir)
    return summary


def _running_pass1(items, records) -> float:
    done = [records[it.id] for it in items if it.id in records]
    return float(np.mean([r["num_correct"] / r["num_samples"] for r in done])) if done else 0.0


def summarize(benchmark: str, items: Sequence[EvalItem], records: dict[str, dict], settings: EvalSettings) -> dict:
    """pass@k (for k <= n), counts of statuses and finish reasons, pass@1 by difficulty."""
    recs = [records[it.id] for it in items if it.id in records]
    n = [r["num_samples"] for r in recs]
    c = [r["num_correct"] for r in recs]
    summary: dict = {"benchmark": benchmark, "kind": items[0].kind if items else None, "problems": len(items),
                     "evaluated": len(recs), "complete": len(recs) == len(items),
                     "samples_per_problem": settings.n}
    summary.update(mean_pass_at_k(n, c, settings.k))
    skipped = [k for k in settings.k if not n or min(n) < k]
    if skipped:
        summary["skipped_k"] = sorted(set(skipped))
    summary["correct_samples"] = int(sum(c))
    summary["total_samples"] = int(sum(n))
    summary["statuses"] = dict(collections.Counter(res["status"] for r in recs for res in r["results"]))
    summary["finish_reasons"] = dict(collections.Counter(f for r in recs for f in r["finish_reasons"]))
    tokens = [t for r in recs for t in r["num_tokens"]]
    summary["mean_new_tokens"] = float(np.mean(tokens)) if tokens else 0.0
    by_diff = collections.defaultdict(list)
    for r in recs:
        if r.get("metadata", {}).get("difficulty"):
            by_diff[str(r["metadata"]["difficulty"]).lower()].append(r)
    if by_diff:
        summary["by_difficulty"] = {
            d: {"problems": len(rs), **mean_pass_at_k([r["num_samples"] for r in rs], [r["num_correct"] for r in rs],
                                                      settings.k)}
            for d, rs in sorted(by_diff.items())}
    summary["settings"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(settings).items()}
    return summary


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)


def write_summaries(out_dir: str | os.PathLike) -> dict:
    """Collect every <benchmark>/summary.json under out_dir into summary.json and summary.md."""
    out_dir = Path(out_dir)
    benchmarks = {}
    for path in sorted(out_dir.glob(f"*/{SUMMARY_FILE}")):
        s = json.loads(path.read_text())
        benchmarks[s.get("benchmark", path.parent.name)] = s
    _write_json(out_dir / SUMMARY_FILE, {"benchmarks": benchmarks})
    (out_dir / TABLE_FILE).write_text(markdown_table(benchmarks))
    return benchmarks


def markdown_table(benchmarks: dict[str, dict]) -> str:
    ks = sorted({int(key[5:]) for s in benchmarks.values() for key in s if key.startswith("pass@")})
    head = ["benchmark", "problems", "n", *[f"pass@{k} (%)" for k in ks], "T", "model"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for name, s in benchmarks.items():
        gen = s.get("generator") or {}
        who = "oracle (references)" if gen.get("oracle") else Path(str(gen.get("model", ""))).name
        cells = [name + ("" if s.get("complete", True) else " (partial)"), str(s.get("evaluated", s.get("problems"))),
                 str(s.get("samples_per_problem", "")),
                 *[f"{100 * s[f'pass@{k}']:.2f}" if f"pass@{k}" in s else "" for k in ks],
                 str(s.get("settings", {}).get("temperature", "")), who]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# several benchmarks at once (the CLI and the training loop)


def check_oracle(benchmark: str, items: Sequence[EvalItem]) -> None:
    missing = [it.id for it in items if it.canonical is None]
    if len(missing) == len(items):
        raise ValueError(f"benchmark {benchmark!r} has no reference solutions, so --oracle canonical cannot "
                         f"check it (its rows carry none)")
    if missing:
        raise ValueError(f"benchmark {benchmark!r}: {len(missing)} of {len(items)} problems have no reference "
                         f"solution (first: {', '.join(missing[:3])}); use --limit or a file with solutions")


def date_window(benchmark: str, preset: str | None, start_date: str | None,
                end_date: str | None) -> tuple[str | None, str | None]:
    """The contest-date window for `benchmark`: the one given, else the preset's (if any)."""
    if start_date or end_date or preset is None:
        return start_date, end_date
    return get_preset(preset).date_window(benchmark)


def run(benchmarks: dict[str, str | None], generator, tracer, out_dir: str | os.PathLike, *,
        limit: int | None = None, start_date: str | None = None, end_date: str | None = None,
        preset: str | None = None, progress: bool = True, overwrite: bool = False, **overrides) -> dict[str, dict]:
    """Evaluate several benchmarks ({name: data path or None}) into out_dir; returns {name: summary}.
    `overrides` are EvalSettings fields applied over each benchmark's defaults and the preset's
    (which also supplies date windows where none is given)."""
    summaries = {}
    for name, path in benchmarks.items():
        first, last = date_window(name, preset, start_date, end_date)
        items = load_benchmark(name, path, limit=limit, start_date=first, end_date=last)
        if isinstance(generator, OracleGenerator):
            check_oracle(name, items)
        settings = settings_for(name, preset, **overrides)
        summaries[name] = evaluate(name, items, generator, tracer, out_dir, settings,
                                   data_path=str(Path(path).absolute()) if path else None, progress=progress,
                                   overwrite=overwrite)
    return summaries


def metrics(summaries: dict[str, dict], prefix: str = "eval") -> dict[str, float]:
    """Flat scalars for a metrics logger: {"eval/humaneval/pass@1": ..., ...}."""
    out = {}
    for name, s in summaries.items():
        for key, value in s.items():
            if key.startswith("pass@"):
                out[f"{prefix}/{name}/{key}"] = float(value)
    return out
