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

import logging
from pathlib import Path

import numpy as np

from coderl_jax.alignment.harvest import output_fits
from coderl_jax.alignment.likelihood import teacher_forced
from coderl_jax.alignment.records import AlignmentRecord
from coderl_jax.alignment.targets import choose_targets, traced_program
from coderl_jax.data.readers import iter_jsonl
from coderl_jax.data.records import DataError

log = logging.getLogger("coderl_jax.alignment")


def read_probe_file(path: str | Path) -> list[dict]:
    """The probe rows of a JSONL file; a row without a program, or with a stdin that is not a
    string, is a DataError naming file, row and field."""
    rows = []
    for i, row in iter_jsonl(path):
        if not isinstance(row.get("program"), str) or not row["program"].strip():
            raise DataError("missing or empty", path=str(path), row=i, field="program", reason="missing_field")
        if not isinstance(row.get("stdin", ""), str):
            raise DataError("must be a string", path=str(path), row=i, field="stdin", reason="bad_tests")
        rows.append({"id": str(row.get("id", f"probe-{i}")), "program": row["program"], "stdin": row.get("stdin", "")})
    return rows


def build_probe_records(rows: list[dict], tracer, *, k: int, targets: str, max_value_chars: int = 200,
                        max_output_chars: int = 0, timeout_s: float = 5.0, limit: int = 64) -> list[AlignmentRecord]:
    """Up to `limit` records of the probe programs, in file order: programs that fail, print
    nothing, are nondeterministic or print more than `max_output_chars` are left out, and the
    rows after the first `limit` stand in for them."""
    strategy = "last" if targets == "loop" else targets  # no per-line trace here
    records: list[AlignmentRecord] = []
    rng = np.random.default_rng(0)
    start = 0
    while len(records) < limit and start < len(rows):  # later rows stand in for those left out
        chunk = rows[start:start + limit - len(records)]
        start += len(chunk)
        results = tracer.trace([{"id": r["id"], "program": traced_program(r["program"], strategy),
                                 "stdin": r["stdin"], "timeout_s": timeout_s, "check_determinism": True}
                                for r in chunk])
        for row, res in zip(chunk, results):
            if res.get("status") != "ok" or not (res.get("stdout") or "").strip() or res.get("nondeterministic"):
                log.warning("probe %s left out: status %s", row["id"], res.get("status"))
                continue
            if not output_fits(res["stdout"], max_output_chars):
                continue
            chosen = choose_targets(res, k, strategy, rng=rng, max_value_chars=max_value_chars)
            records.append(AlignmentRecord(program=row["program"], stdin=row["stdin"], output=res["stdout"],
                                           source=row["id"], targets=chosen))
    return records


def load_probe(rows: list[dict], cfg, tracer, align) -> list[AlignmentRecord]:
    """The probe records of `rows` (read_probe_file) with the run's target selection, those whose
    prompt fits."""
    a = cfg.alignment
    records = build_probe_records(rows, tracer, k=a.k, targets=a.targets, max_value_chars=a.max_value_chars,
                                  max_output_chars=a.max_output_chars, timeout_s=a.harvest_timeout_s, limit=a.probe_max)
    return [r for r in records if align.prompt_fits(r)]


def probe(records: list[AlignmentRecord], *, align, tokenizer, sampler, loglik_fn, max_new_tokens: int,
          stop: tuple = (), seed: int = 0) -> dict:
    """probe/loglik, probe/exact, probe/accuracy, probe/parsed of the current policy.

    `loglik_fn(rows) -> log-probs [B, L]` scores packed rows under the policy; `sampler` answers
    greedily from the same policy; `align` (an AlignmentTask) builds the prompts and decodes."""
    from coderl_jax.alignment.answers import parse_answer
    from coderl_jax.alignment.rewards import score_answer
    from coderl_jax.sampling.sampler import SamplingParams

    prompt_ids = align.prompt_ids(records)
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    responses, masks = [], []
    for rec in records:
        ids, mask = teacher_forced(rec, [], None, decode=align.decode, encode=encode)
        responses.append(ids)
        masks.append(mask)
    loglik = align.likelihood(loglik_fn, prompt_ids, responses, masks)
    sp = SamplingParams(n=1, max_new_tokens=max_new_tokens, temperature=0.0, stop=tuple(stop), seed=seed)
    groups = sampler.generate(prompt_ids, sp)
    scores = [score_answer(rec, parse_answer(align.decode(g[0].token_ids)), "official")
              for rec, g in zip(records, groups)]
    return {"probe/loglik": float(np.mean(loglik)), "probe/exact": float(np.mean([s.exact for s in scores])),
            "probe/accuracy": float(np.mean([s.accuracy for s in scores])),
            "probe/parsed": float(np.mean([s.parsed for s in scores])), "probe/records": len(records)}
