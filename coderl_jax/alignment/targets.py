"""Choosing which traced variables the policy is asked to predict.

The tracer reports every variable the program assigned, function locals included (qualified,
`main.total`), each with an `order` (rank of its last assignment). Strategies:

    last      the K whose last assignment came last, function locals included (this project's
              rule: `def main(): ...` programs get targets too)
    official  the official code's rule: module-level names only, not starting with "_", of a
              simple type (None, bool, int, float, str, list, tuple, set, plain dict), the last K
              in first-definition order (the order the names entered the module's namespace; a
              reassignment does not move a name). Sets are asked about as lists (sorted).
    random    K drawn uniformly (seeded)
    all       every eligible variable
    loop      K drawn without replacement with weight 1 + (number of times the value changed),
              so loop-carried variables (accumulators, counters) are preferred; needs the
              per-line trace (`per_line=True`), without it this is `random`

Only values with a faithful JSON form are eligible (see records.jsonable), and only values whose
rendering fits `max_value_chars` (<= 0: no limit).

First-definition order is read the way the official code reads it: from the module namespace's
own insertion order at the end of the run. `with_definition_order` appends one line to the
traced program that copies the namespace's keys into `DEFINITION_ORDER_VAR`; the record keeps
the program without it.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from coderl_jax.alignment.records import is_missing, jsonable

STRATEGIES = ("last", "official", "random", "all", "loop")

DEFINITION_ORDER_VAR = "_coderl_defined"
# a list display, not list(): a program may rebind `list`; the leading "_" keeps it out of the
# official rule's candidates
_DEFINITION_ORDER_LINE = f'{DEFINITION_ORDER_VAR} = [*__import__("builtins").globals()]\n'
# the official rule's simple types, as the tracer's typed form names them (a dict subclass such as
# defaultdict or Counter carries "cls" and is not simple)
SIMPLE_KINDS = ("none", "bool", "int", "float", "str", "list", "tuple", "set", "dict")


def needs_events(strategy: str) -> bool:
    """Whether `strategy` reads the per-line trace (`per_line=True`)."""
    return strategy == "loop"


def with_definition_order(program: str) -> str:
    """`program` with the line that records its module names in first-definition order appended."""
    return f"{program.rstrip()}\n\n{_DEFINITION_ORDER_LINE}"


def _fits(v: dict, max_value_chars: int) -> bool:
    return max_value_chars <= 0 or len(v.get("repr", "")) <= max_value_chars


def eligible_variables(variables: Mapping[str, dict], *, max_value_chars: int = 200) -> list[dict]:
    """[{"name", "value", "json", "order"}] of the variables that can be asked about, in trace order."""
    out = []
    for name, v in sorted(variables.items(), key=lambda kv: kv[1].get("order", 0)):
        if not _fits(v, max_value_chars):
            continue
        j = jsonable(v["value"])
        if is_missing(j):
            continue
        out.append({"name": name, "value": v["value"], "json": j, "order": v.get("order", 0)})
    return out


def _set_as_list(typed: dict) -> dict:
    """A set's typed form as a list's (items already in canonical, sorted order)."""
    return {**typed, "t": "list"} if typed.get("t") == "set" else typed


def official_candidates(variables: Mapping[str, dict], *, max_value_chars: int = 0) -> list[dict]:
    """The official rule's candidates in first-definition order (read from DEFINITION_ORDER_VAR,
    which `with_definition_order` adds): module-level, no leading "_", a simple type at the top, a
    JSON form. Without the order line's value (the program ended before it, e.g. sys.exit()) there
    are none, as in the official code, whose capture then never runs."""
    order = variables.get(DEFINITION_ORDER_VAR)
    if order is None or order["value"].get("t") != "list":
        return []
    out = []
    for item in order["value"]["items"]:
        name = item.get("v") if item.get("t") == "str" else None
        if not name or name.startswith("_") or "." in name or name not in variables:
            continue
        v = variables[name]
        typed = v["value"]
        if typed.get("t") not in SIMPLE_KINDS or "cls" in typed or not _fits(v, max_value_chars):
            continue
        typed = _set_as_list(typed)
        j = jsonable(typed)
        if is_missing(j):
            continue
        out.append({"name": name, "value": typed, "json": j, "order": len(out)})
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
    """Up to k of `candidates` (k <= 0 or strategy "all": every one), returned in trace order.
    "last" and "official" take the last k (the caller orders the candidates: by last assignment
    for "last", `official_candidates` by first definition)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"alignment.targets must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "all" or k <= 0 or len(candidates) <= k:
        return list(candidates)
    if strategy in ("last", "official"):
        return list(candidates[-k:])
    rng = rng or np.random.default_rng(0)
    if strategy == "loop" and changes:
        w = np.array([1.0 + changes.get(c["name"], 0) for c in candidates])
        idx = rng.choice(len(candidates), size=k, replace=False, p=w / w.sum())
    else:
        idx = rng.choice(len(candidates), size=k, replace=False)
    return [candidates[i] for i in sorted(idx)]


def traced_program(program: str, strategy: str) -> str:
    """What the tracer runs for `program` under `strategy` (the official rule adds its order line)."""
    return with_definition_order(program) if strategy == "official" else program


def choose_targets(result: dict, k: int, strategy: str, *, rng: np.random.Generator | None = None,
                   max_value_chars: int = 200) -> tuple[dict, ...]:
    """The targets of one trace result ({"variables", ["events"]}) of `traced_program(...)`, as
    record entries {"name", "value", "json"} in the order they are asked."""
    variables = result.get("variables") or {}
    if strategy == "official":
        candidates = official_candidates(variables, max_value_chars=max_value_chars)
    else:
        candidates = eligible_variables(variables, max_value_chars=max_value_chars)
    chosen = select_targets(candidates, k, strategy, rng=rng, changes=change_counts(result.get("events")))
    return tuple({"name": c["name"], "value": c["value"], "json": c["json"]} for c in chosen)
