"""Step-level reasoning for alignment answers: what each step of a traced program leaves behind.

An alignment answer is reasoning, then the JSON answer line. For supervised examples the reasoning
is built here from the tracer's per-line trace of the program on its input (`per_line=True`,
docs/tracer-values.md), so that every value a line states is one local operation away from the
lines before it:

    nums = [1, -5, 3, 3, 5, 4, -4, -1]
    solve.evens = [4, -4]
    solve.total: 0; 4 -> 4; -4 -> 0
    {"final_output": "0", "variables": {...}}

Lines, in the order in which each variable last changed (a pipeline's steps in program order):

    value line   `name = value`: a variable's final value (the last completed call's, as in the
                 answer), for containers, strings and scalars assigned outside a loop
    fold line    `name: v0; item1 -> v1; item2 -> v2; ...` for a scalar (number, bool, None or a
                 one-character string) assigned inside a `for` loop of its function: the value
                 before the first iteration, then per iteration the loop item and the value after
                 it (so a sum, a count, a running total or a running max shows every partial
                 value); two runs of the loop are separated by ` | `. Without a `for` loop (a
                 `while` loop, a reassignment) the changes: `name: v0; v1; v2`.
    delta line   `name: {}; item1 -> [k]=v; ...` for a dict assigned or updated inside a `for`
                 loop (a count per key): per iteration the entries it set, `.` when none; the
                 dict's value line follows.

Loop variables (`for` targets) get no line of their own; they appear as the items. Names are
qualified as the answer's (`solve.evens`; module names plain) and values are rendered as Python
literals (`tracer.values.render`), as the program would print them.

Bounds (`StepsConfig`): at most `max_lines` lines (the last ones are kept, the first line then is
`...`), each at most `max_line_chars` characters: a long value keeps its first items (`[1, 2,
...]`, `'abc' + ...`), a long fold keeps its first partial values and its last (`; ...;`).

Only the tracer runs the program (`trace_steps` sends per-line trace requests to its sandbox);
everything here reads the trace, and the program's text only through `ast`.
"""

from __future__ import annotations

import ast
import dataclasses
from typing import Any, Mapping, Sequence

from tracer.values import render

STYLES = ("steps", "fixed")  # step-level lines | the one fixed sentence of older warm starts
ELLIPSIS_LINE = "..."
_SCALAR_KINDS = ("none", "bool", "int", "float")


@dataclasses.dataclass(frozen=True)
class StepsConfig:
    max_lines: int = 10  # reasoning lines at most (the last ones are kept)
    max_line_chars: int = 120  # characters per line at most
    max_item_chars: int = 24  # a loop item on a fold line at most
    max_events: int = 10_000  # per-line events asked of the tracer; a trace that has more gets no lines

    def validate(self) -> "StepsConfig":
        if self.max_lines < 1:
            raise ValueError(f"steps: max_lines={self.max_lines} must be >= 1")
        if self.max_line_chars < 40:
            raise ValueError(f"steps: max_line_chars={self.max_line_chars} must be >= 40")
        if self.max_item_chars < 4:
            raise ValueError(f"steps: max_item_chars={self.max_item_chars} must be >= 4")
        return self


# ------------------------------------------------------------------------------------------------
# What the source says: for loops per scope


@dataclasses.dataclass(frozen=True)
class _Loop:
    scope: str  # qualified name of the function ("" for the module)
    headers: frozenset[int]  # lines the tracer may report for the header
    body: frozenset[int]  # lines of the loop's body
    targets: tuple[str, ...]  # the loop variables
    span: int  # body size: the innermost loop has the smallest


def _lines(stmts: Sequence[ast.stmt]) -> frozenset[int]:
    return frozenset(n for s in stmts for n in range(s.lineno, (s.end_lineno or s.lineno) + 1))


def _stored_names(stmts: Sequence[ast.stmt]) -> set[str]:
    """Names assigned (or subscript-assigned) in `stmts`, not inside nested defs or classes."""
    out, stack = set(), list(stmts)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name):
            out.add(node.value.id)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name):
            out.add(node.func.value.id)  # d.update(...), d.setdefault(...)
        stack.extend(ast.iter_child_nodes(node))
    return out


def source_loops(program: str) -> tuple[list[_Loop], dict[str, _Loop], set[str]]:
    """(every `for` loop, qualified name -> the innermost loop of its scope that assigns it,
    the qualified names of the functions' parameters)."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return [], {}, set()
    loops: list[tuple[_Loop, set[str]]] = []
    params: set[str] = set()
    stack: list[tuple[ast.AST, str]] = [(tree, "")]
    while stack:
        node, scope = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = f"{scope}.{child.name}" if scope else child.name
                if not isinstance(child, ast.ClassDef):
                    a = child.args
                    params.update(f"{inner}.{x.arg}" for x in [*a.posonlyargs, *a.args, *a.kwonlyargs,
                                                                *filter(None, (a.vararg, a.kwarg))])
                stack.append((child, inner))
                continue
            if isinstance(child, (ast.For, ast.AsyncFor)):
                targets = tuple(n.id for n in ast.walk(child.target) if isinstance(n, ast.Name))
                body = _lines(child.body)
                loops.append((_Loop(scope, frozenset({child.lineno, child.target.lineno}), body, targets,
                                    len(body)), _stored_names(child.body)))
            stack.append((child, scope))
    owner: dict[str, _Loop] = {}
    for loop, names in loops:
        for name in names:
            if name in loop.targets:
                continue
            qualified = f"{loop.scope}.{name}" if loop.scope else name
            if qualified not in owner or loop.span < owner[qualified].span:
                owner[qualified] = loop
    return [lp for lp, _ in loops], owner, params


# ------------------------------------------------------------------------------------------------
# Rendering within a budget


def _cut(text: str, budget: int) -> str:
    return text if len(text) <= budget else text[:max(budget - 3, 0)] + "..."


def _longest_fit(n: int, text_of, budget: int) -> str | None:
    """`text_of(m)` for the largest m in [0, n] whose text fits `budget` (texts grow with m), or None."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(text_of(mid)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    text = text_of(lo)
    return text if len(text) <= budget else None


def short_value(typed: Mapping[str, Any], budget: int) -> str:
    """`render(typed)` in at most `budget` characters: a container keeps its first items and ends
    with `...`, a string keeps its first characters (`'abc' + ...`), anything else is cut."""
    text = render(typed)
    if len(text) <= budget:
        return text
    out = None
    if typed.get("t") == "str" and "v" in typed:
        value = typed["v"]
        out = _longest_fit(len(value), lambda m: render({**typed, "v": value[:m], "trunc": True}), budget)
    elif isinstance(typed.get("items"), list) and typed["items"]:
        items = typed["items"]
        out = _longest_fit(len(items) - 1, lambda m: render({**typed, "items": items[:m], "trunc": True}), budget)
    return out if out is not None else _cut(text, budget)


def _is_scalar(typed: Mapping[str, Any] | None) -> bool:
    if typed is None:
        return True  # not yet defined
    kind = typed.get("t")
    return kind in _SCALAR_KINDS or (kind == "str" and not typed.get("trunc") and len(typed.get("v", "")) <= 1)


def _fold_line(name: str, parts: list[str], budget: int) -> str:
    """`name: p0; p1; ...` in at most `budget` characters: the first parts and the last, `...` between."""
    head = f"{name}: "
    line = head + "; ".join(parts)
    if len(line) <= budget or len(parts) < 3:
        return _cut(line, budget)
    for keep in range(len(parts) - 2, 0, -1):
        line = head + "; ".join(parts[:keep] + ["...", parts[-1]])
        if len(line) <= budget:
            return line
    return _cut(head + "; ".join(["...", parts[-1]]), budget)


# ------------------------------------------------------------------------------------------------
# Lines from a per-line trace


def _scope_of(qualified: str) -> str:
    return qualified.rsplit(".", 1)[0] if "." in qualified else ""


def _iterations(events: list[dict], loop: _Loop, names: Sequence[str]) -> list[list[tuple[str, Any, dict]]]:
    """Per run of `loop`: [("start", item, {name: value before the iteration}) ... ("end", None,
    {name: value after the last iteration})], read at the loop header's events. A header event is
    an iteration start when the next event of the same scope is a line of the body."""
    qual = [f"{loop.scope}.{t}" if loop.scope else t for t in loop.targets]
    next_same: list[int | None] = [None] * len(events)
    following: dict[str, int] = {}
    for i in range(len(events) - 1, -1, -1):
        next_same[i] = following.get(events[i]["scope"])
        following[events[i]["scope"]] = i
    current: dict[str, Any] = {}
    runs: list[list] = []
    open_run = False
    for i, e in enumerate(events):
        current.update(e.get("changed") or {})
        if e["scope"] != loop.scope or e["line"] not in loop.headers:
            continue
        j = next_same[i]
        values = {n: current.get(n) for n in names}
        if j is not None and events[j]["line"] in loop.body:
            if not open_run:
                runs.append([])
                open_run = True
            item = tuple(current.get(q) for q in qual)
            runs[-1].append(("start", item, values))
        elif open_run:
            runs[-1].append(("end", None, values))
            open_run = False
    return runs


def _item_text(item: tuple, budget: int) -> str:
    parts = ["?" if v is None else short_value(v, budget) for v in item]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


def _value_text(typed: Mapping[str, Any] | None, budget: int) -> str:
    return "?" if typed is None else short_value(typed, budget)


def _dict_delta(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, budget: int) -> str:
    """The entries `after` sets that `before` lacks or holds with another value: `[k]=v, [k2]=v2`."""
    if after is None or after.get("t") != "dict":
        return _value_text(after, budget)
    old = {render(k): render(v) for k, v in (before or {}).get("items", [])} if before and before.get("t") == "dict" \
        else {}
    changed = [f"[{render(k)}]={render(v)}" for k, v in after.get("items", []) if old.get(render(k)) != render(v)]
    return _cut(", ".join(changed), budget) if changed else "."


def _loop_parts(runs: list[list], name: str, cfg: StepsConfig, *, delta: bool) -> list[str]:
    parts: list[str] = []
    for r, run in enumerate(runs):
        if not run:
            continue
        first = run[0][2][name]
        lead = _value_text(first, cfg.max_line_chars) if first is not None or not delta else "{}"
        if r:
            parts.append("| " + lead)
        elif first is not None:
            parts.append(lead)
        for (kind, item, before), (_, _, after) in zip(run, run[1:] + [("end", None, run[-1][2])]):
            if kind != "start":
                continue
            b, a = before[name], after[name]
            shown = _dict_delta(b, a, cfg.max_line_chars) if delta else _value_text(a, cfg.max_line_chars)
            parts.append(f"{_item_text(item, cfg.max_item_chars)} -> {shown}")
    return parts


def step_lines(program: str, trace: Mapping[str, Any], cfg: StepsConfig = StepsConfig(),
               targets: Sequence[str] = ()) -> list[str]:
    """The reasoning lines of one per-line trace result of `program` ({"events", "variables"}), or
    [] when it has no usable events (none, or truncated). Loop variables, and parameters that no
    line changes, get a line only when they are among `targets` (the names the answer gives); a
    target that no line changed (a parameter) gets its value line first."""
    events = list(trace.get("events") or [])
    if not events or trace.get("events_truncated"):
        return []
    loops, owner, params = source_loops(program)
    wanted = set(targets)
    loop_vars = {f"{lp.scope}.{t}" if lp.scope else t for lp in loops for t in lp.targets}
    loop_targets = loop_vars - wanted
    variables = trace.get("variables") or {}
    history: dict[str, list[Any]] = {}
    last_change: dict[str, int] = {}
    for i, e in enumerate(events):
        for name, typed in (e.get("changed") or {}).items():
            if name in loop_targets:
                continue
            history.setdefault(name, []).append(typed)
            last_change[name] = i
    for name in list(history):  # a parameter read by a call (`sorted(nums)`) is reported, not changed
        if name in params and name not in wanted and all(v == history[name][0] for v in history[name]):
            del history[name]
    for name in targets:
        if name not in history and name in variables:
            history[name], last_change[name] = [variables[name]["value"]], -1
    budget = cfg.max_line_chars
    lines: list[tuple[int, str]] = []
    for name in sorted(history, key=lambda n: last_change[n]):
        final = (variables.get(name) or {}).get("value") or history[name][-1]
        value_line = _cut(f"{name} = {short_value(final, max(budget - len(name) - 3, 8))}", budget)
        loop = owner.get(name)
        if loop is not None and loop.scope != _scope_of(name):
            loop = None
        if name in loop_vars:  # a loop variable asked about: its last item
            lines.append((last_change[name], value_line))
            continue
        if all(_is_scalar(v) for v in history[name]) and final.get("t") != "dict":
            if loop is not None:
                parts = _loop_parts(_iterations(events, loop, [name]), name, cfg, delta=False)
            else:
                parts = [_value_text(v, budget) for v in history[name]] if len(history[name]) > 1 else []
            lines.append((last_change[name], _fold_line(name, parts, budget) if parts else value_line))
            continue
        if final.get("t") == "dict" and loop is not None:
            parts = _loop_parts(_iterations(events, loop, [name]), name, cfg, delta=True)
            if parts:
                lines.append((last_change[name], _fold_line(name, parts, budget)))
        lines.append((last_change[name], value_line))
    out = [text for _, text in lines]
    if len(out) > cfg.max_lines:
        out = [ELLIPSIS_LINE] + out[len(out) - cfg.max_lines + 1:]
    return out


# ------------------------------------------------------------------------------------------------
# Tracing records


def trace_steps(tracer, records: Sequence, *, timeout_s: float = 5.0, cfg: StepsConfig = StepsConfig()
                ) -> list[dict | None]:
    """Per-line traces of `records` (alignment records) in the tracer's sandbox: one result per
    record, or None when the run does not reproduce the record (status, stdout, or a target's value
    differs), so that reasoning and answer always come from the same run."""
    requests = [{"id": str(i), "program": r.program, "stdin": r.stdin, "timeout_s": timeout_s, "per_line": True,
                 "max_events": cfg.max_events} for i, r in enumerate(records)]
    results = tracer.trace(requests) if requests else []
    out: list[dict | None] = []
    for record, res in zip(records, results):
        variables = res.get("variables") or {}
        same = res.get("status") == "ok" and (res.get("stdout") or "") == record.output and all(
            (variables.get(t["name"]) or {}).get("value") == t["value"] for t in record.targets)
        out.append(res if same else None)
    return out


def reasoning_text(record, trace: Mapping[str, Any] | None, cfg: StepsConfig = StepsConfig()) -> str | None:
    """The step lines of `record` joined by newlines, or None when there are none."""
    if trace is None:
        return None
    lines = step_lines(record.program, trace, cfg, record.target_names)
    return "\n".join(lines) if lines else None


# ------------------------------------------------------------------------------------------------
# Reading the lines back


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    kind: str  # "value" | "fold"
    value: str = ""  # value line: the value's text
    parts: tuple[str, ...] = ()  # fold line: "v0", "item -> v", "...", "| v0"


def _split_top(text: str, sep: str) -> list[str]:
    """`text` split at `sep` outside quotes and brackets."""
    out, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            out.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    out.append(text[start:])
    return out


def parse_steps(reasoning: str) -> list[Step]:
    """The steps of reasoning lines written by `step_lines` (lines that are neither are skipped)."""
    steps = []
    for line in reasoning.splitlines():
        value = _split_top(line, " = ")
        if len(value) == 2 and value[0] and " " not in value[0]:
            steps.append(Step(value[0], "value", value=value[1]))
            continue
        fold = _split_top(line, ": ")
        if len(fold) >= 2 and fold[0] and " " not in fold[0]:
            steps.append(Step(fold[0], "fold", parts=tuple(_split_top(": ".join(fold[1:]), "; "))))
    return steps
