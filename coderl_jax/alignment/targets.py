"""Choosing which traced variables the policy is asked to predict.

The tracer reports every variable the program assigned, function locals included (qualified,
`main.total`), each with an `order` (rank of its last assignment). Strategies:

    last     the K last defined (the official code's rule, K = 3)
    random   K drawn uniformly (seeded)
    all      every eligible variable
    loop     K drawn without replacement with weight 1 + (number of times the value changed),
             so loop-carried variables (accumulators, counters) are preferred; needs the
             per-line trace (`per_line=True`), without it this is `random`

Only values with a faithful JSON form are eligible (see records.jsonable), and only values whose
rendering fits `max_value_chars`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from coderl_jax.alignment.records import is_missing, jsonable

STRATEGIES = ("last", "random", "all", "loop")


def eligible_variables(variables: Mapping[str, dict], *, max_value_chars: int = 200) -> list[dict]:
    """[{"name", "value", "json", "order"}] of the variables that can be asked about, in trace order."""
    out = []
    for name, v in sorted(variables.items(), key=lambda kv: kv[1].get("order", 0)):
        if len(v.get("repr", "")) > max_value_chars:
            continue
        j = jsonable(v["value"])
        if is_missing(j):
            continue
        out.append({"name": name, "value": v["value"], "json": j, "order": v.get("order", 0)})
    return out


def change_counts(events: list[dict] | None) -> dict[str, int]:
    """How many per-line events changed each variable (a loop-carried variable changes often)."""
    counts: dict[str, int] = {}
    for e in events or ():
        for name in e.get("changed", {}):
            counts[name] = counts.get(name, 0) + 1
    return counts


def select_targets(candidates: list[dict], k: int, strategy: str = "last", *, rng: np.random.Generator | None = None,
                   changes: Mapping[str, int] | None = None) -> list[dict]:
    """Up to k of `candidates` (k <= 0 or strategy "all": every one), returned in trace order."""
    if strategy not in STRATEGIES:
        raise ValueError(f"alignment.targets must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "all" or k <= 0 or len(candidates) <= k:
        return list(candidates)
    if strategy == "last":
        return list(candidates[-k:])
    rng = rng or np.random.default_rng(0)
    if strategy == "loop" and changes:
        w = np.array([1.0 + changes.get(c["name"], 0) for c in candidates])
        idx = rng.choice(len(candidates), size=k, replace=False, p=w / w.sum())
    else:
        idx = rng.choice(len(candidates), size=k, replace=False)
    return [candidates[i] for i in sorted(idx)]
