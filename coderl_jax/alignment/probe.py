"""The probe: how well the policy knows the runtime state of held-out programs.

A probe file is JSONL, one program per row: `{"program": str, "stdin": str (optional),
"id": str (optional)}`. At start-up each program is traced (sandboxed) and turned into a record
with the run's target selection; at every evaluation two numbers are logged:

    probe/loglik    the mean log-probability of the true values' tokens when the true answer
                    line is teacher-forced right after the alignment prompt (masked to the
                    value tokens, averaged over records)
    probe/exact     the fraction of greedy answers with every item right (lenient equality);
                    probe/accuracy the fraction of items right, probe/parsed of valid answers
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from coderl_jax.alignment.likelihood import teacher_forced
from coderl_jax.alignment.records import AlignmentRecord
from coderl_jax.alignment.targets import eligible_variables, select_targets
from coderl_jax.data.records import DataError

log = logging.getLogger("coderl_jax.alignment")


def read_probe_file(path: str | Path) -> list[dict]:
    rows = []
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DataError(f"cannot read probe file: {e.strerror}", path=str(path), reason="unreadable_file") from e
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise DataError(f"not JSON: {e}", path=str(path), row=i, reason="unreadable_row") from e
        if not isinstance(row, dict):
            raise DataError("a row must be a JSON object", path=str(path), row=i, reason="unreadable_row")
        if not isinstance(row.get("program"), str) or not row["program"].strip():
            raise DataError("missing or empty", path=str(path), row=i, field="program", reason="missing_field")
        if not isinstance(row.get("stdin", ""), str):
            raise DataError("must be a string", path=str(path), row=i, field="stdin", reason="bad_tests")
        rows.append({"id": str(row.get("id", f"probe-{i}")), "program": row["program"], "stdin": row.get("stdin", "")})
    return rows


def build_probe_records(rows: list[dict], tracer, *, k: int, targets: str, max_value_chars: int = 200,
                        timeout_s: float = 5.0, limit: int = 64) -> list[AlignmentRecord]:
    """Trace the probe programs; programs that fail, print nothing or are nondeterministic are left out."""
    results = tracer.trace([{"id": r["id"], "program": r["program"], "stdin": r["stdin"], "timeout_s": timeout_s,
                             "check_determinism": True} for r in rows[:limit]])
    records = []
    rng = np.random.default_rng(0)
    for row, res in zip(rows, results):
        if res.get("status") != "ok" or not (res.get("stdout") or "").strip() or res.get("nondeterministic"):
            log.warning("probe %s left out: status %s", row["id"], res.get("status"))
            continue
        chosen = select_targets(eligible_variables(res.get("variables") or {}, max_value_chars=max_value_chars),
                                k, "last" if targets == "loop" else targets, rng=rng)
        records.append(AlignmentRecord(program=row["program"], stdin=row["stdin"], output=res["stdout"],
                                       source=row["id"], targets=tuple(
                                           {"name": c["name"], "value": c["value"], "json": c["json"]} for c in chosen)))
    return records


def load_probe(cfg, tracer, align) -> list[AlignmentRecord]:
    a = cfg.alignment
    records = build_probe_records(read_probe_file(a.probe_path), tracer, k=a.k, targets=a.targets,
                                  max_value_chars=a.max_value_chars, timeout_s=a.harvest_timeout_s, limit=a.probe_max)
    return [r for r in records if align.prompt_fits(r)]


def probe(ctx, records: list[AlignmentRecord], step: int) -> dict:
    """probe/loglik, probe/exact, probe/accuracy, probe/parsed for the current policy."""
    from coderl_jax.alignment.answers import parse_answer
    from coderl_jax.alignment.rewards import score_answer
    from coderl_jax.sampling.sampler import SamplingParams

    align = ctx.align
    prompt_ids = align.prompt_ids(records)
    encode = lambda text: ctx.tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    responses, masks = [], []
    for rec in records:
        ids, mask = teacher_forced(rec, [], None, decode=align.decode, encode=encode)
        responses.append(ids)
        masks.append(mask)
    params = ctx.live["state"].params
    loglik = align.likelihood(lambda b: ctx.logprobs(params, b)[0], prompt_ids, responses, masks)
    sp = SamplingParams(n=1, max_new_tokens=ctx.cfg.rollout.max_new_tokens, temperature=0.0,
                        stop=tuple(ctx.cfg.rollout.stop), seed=step)
    groups = ctx.sampler.generate(prompt_ids, sp)
    scores = [score_answer(rec, parse_answer(align.decode(g[0].token_ids)), "official")
              for rec, g in zip(records, groups)]
    return {"probe/loglik": float(np.mean(loglik)), "probe/exact": float(np.mean([s.exact for s in scores])),
            "probe/accuracy": float(np.mean([s.accuracy for s in scores])),
            "probe/parsed": float(np.mean([s.parsed for s in scores])), "probe/records": len(records)}
