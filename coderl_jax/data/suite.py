"""The embedded task suite: seeded, compositional Python problems for the default run.

    splits = generate_suite(seed=0, n_train=3000, n_heldout=300)   # {"train": [...], "heldout": [...]}
    paths = write_suite("suite/", seed=0)                           # train.jsonl, heldout.jsonl
    ds = build_suite_dataset("~/.cache/coderl_jax/tfds", seed=0)    # tfds splits "train" and "test"

    python -m coderl_jax.data.suite --out DIR [--seed S] [--train N] [--heldout N]

A problem is a pipeline of 2 or 3 **primitives** (keep the even numbers, square each number,
return their sum, ...). Each primitive has one fixed English phrase, one fixed code idiom (an
explicit loop or conditional writing a named local: `evens`, `total`, `counts`), and one pure
Python function. The statement joins the phrases; the reference solution joins the idioms inside
`def solve(...)` plus a fixed two-line main block (read stdin, print `solve(...)`); the expected
outputs come from the pure functions, never from running the generated code.

The **held-out split** holds compositions never seen in training: a seeded choice of adjacent
primitive pairs (bigrams) is held out, and a composition is held out iff it contains one of them,
so training never shows a held-out bigram, and every primitive still appears in training.

Deterministic: the same arguments give the same bytes; problem i of a split depends only on
(seed, split, i) and the composition lists, so a smaller suite is a prefix of a larger one.
Details and the table of primitives: docs/suite.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import math
import os
import random
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

from coderl_jax.data.records import Problem, record_input_index

SUITE_VERSION = 1
SPLITS = ("train", "heldout")
TFDS_SPLITS = {"train": "train", "heldout": "test"}
ANSWER = "Answer with a ```python code block."

# Value types, named by their annotation.
INTS, TEXT, INT, CI, CS = "list[int]", "str", "int", "dict[int, int]", "dict[str, int]"
START_TYPES = (INTS, TEXT)
ELEM = {INTS: "x", TEXT: "ch", CI: "k", CS: "k"}          # loop variable over a value of this type
ARG = {INTS: "nums", TEXT: "s"}                             # solve's parameter
MAIN = {INTS: "nums = list(map(int, input().split()))\nprint(solve(nums))\n",
        TEXT: "s = input()\nprint(solve(s))\n"}
READ_PHRASE = {INTS: "Read nums as one line of integers", TEXT: "Read s as one line"}
VOWELS = "aeiou"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
WORDS = ("apple", "banana", "cat", "dog", "egg", "fish", "green", "hat", "ice", "jam", "kite", "lemon",
         "moon", "nest", "open", "pear", "queen", "red", "sun", "tree", "up", "van", "water", "box", "yes",
         "zoo", "bird", "cake", "door", "east", "frog", "gold", "hill", "ink", "joy", "king", "leaf", "milk",
         "note", "owl", "pie", "rain", "star", "toy", "uncle", "vase", "wind", "year", "zero", "book")
INT_RANGE = (-5, 9)       # test-input integers
INT_LEN = (4, 8)          # test-input list lengths
WORDS_PER_TEXT = (2, 4)   # test-input texts: this many words from WORDS


def _no_params(rng: random.Random, value: Any) -> dict:
    return {}


def _threshold_gt(rng: random.Random, value: list[int]) -> dict:
    """A threshold that keeps a non-empty part of the first input's list (a proper part if it can)."""
    vals = sorted(set(value))
    return {"t": rng.choice(vals[:-1]) if len(vals) > 1 else vals[0] - 1}


def _threshold_lt(rng: random.Random, value: list[int]) -> dict:
    vals = sorted(set(value))
    return {"t": rng.choice(vals[1:]) if len(vals) > 1 else vals[0] + 1}


def _char_of(rng: random.Random, value: str) -> str:
    return rng.choice(sorted(set(value) - {" "}) or ["a"])


@dataclasses.dataclass(frozen=True)
class Primitive:
    """One step: `types` maps an input type to the output type; `code` is the idiom (a template
    over {i} the input variable, {o} the output variable = `var`, {e} the loop variable, and the
    step's parameters), one per input type when it differs; `fn(value, params)` is the same
    step as a pure function; `sample(rng, value)` draws the parameters given the value the step
    sees on the first test input. A `terminal` step's phrase says "return ..." and ends a pipeline."""

    name: str
    types: dict[str, str]
    var: str
    phrase: str
    code: str | dict[str, str]
    fn: Callable[[Any, dict], Any]
    sample: Callable[[random.Random, Any], dict] = _no_params
    terminal: bool = False

    def idiom(self, in_type: str) -> str:
        return self.code[in_type] if isinstance(self.code, dict) else self.code


def _loop(body: str, init: str = "[]") -> str:
    return f"{{o}} = {init}\nfor {{e}} in {{i}}:\n{body}"


def _filter(cond: str) -> str:
    return _loop(f"    if {cond}:\n        {{o}}.append(x)\n")


def _map(expr: str) -> str:
    return _loop(f"    {{o}}.append({expr})\n")


def _repeated(counts: dict, p: dict) -> list[int] | str:
    keys = [k for k, n in counts.items() if n > 1]
    return keys if isinstance(next(iter(counts)), int) else "".join(keys)

PRIMITIVES: tuple[Primitive, ...] = (
    # list[int] -> list[int]
    Primitive("keep_even", {INTS: INTS}, "evens", "keep the even numbers",
              _filter("x % 2 == 0"), lambda v, p: [x for x in v if x % 2 == 0]),
    Primitive("keep_odd", {INTS: INTS}, "odds", "keep the odd numbers",
              _filter("x % 2 != 0"), lambda v, p: [x for x in v if x % 2 != 0]),
    Primitive("keep_gt", {INTS: INTS}, "big", "keep the numbers greater than {t}",
              _filter("x > {t}"), lambda v, p: [x for x in v if x > p["t"]], _threshold_gt),
    Primitive("keep_lt", {INTS: INTS}, "small", "keep the numbers less than {t}",
              _filter("x < {t}"), lambda v, p: [x for x in v if x < p["t"]], _threshold_lt),
    Primitive("square", {INTS: INTS}, "squares", "square each number",
              _map("x * x"), lambda v, p: [x * x for x in v]),
    Primitive("add", {INTS: INTS}, "shifted", "add {c} to each number",
              _map("x + {c}"), lambda v, p: [x + p["c"] for x in v],
              lambda rng, v: {"c": rng.randint(1, 9)}),
    Primitive("multiply", {INTS: INTS}, "scaled", "multiply each number by {c}",
              _map("x * {c}"), lambda v, p: [x * p["c"] for x in v],
              lambda rng, v: {"c": rng.randint(2, 5)}),
    Primitive("absolute", {INTS: INTS}, "mags", "take absolute values",
              _map("abs(x)"), lambda v, p: [abs(x) for x in v]),
    Primitive("reverse", {INTS: INTS}, "rev", "reverse the list",
              _loop("    {o}.insert(0, x)\n"), lambda v, p: v[::-1]),
    Primitive("sort", {INTS: INTS}, "ordered", "sort the list",
              "{o} = sorted({i})\n", lambda v, p: sorted(v)),
    Primitive("running_sum", {INTS: INTS}, "prefix", "take the running sums",
              "{o} = []\nrun = 0\nfor x in {i}:\n    run += x\n    {o}.append(run)\n",
              lambda v, p: [sum(v[: j + 1]) for j in range(len(v))]),
    Primitive("dedupe", {INTS: INTS}, "unique", "remove duplicates, keeping first occurrences",
              _filter("x not in {o}"), lambda v, p: list(dict.fromkeys(v))),
    # list[int] -> int
    Primitive("sum", {INTS: INT}, "total", "return their sum",
              _loop("    {o} += x\n", "0"), lambda v, p: sum(v), terminal=True),
    Primitive("count", {INTS: INT}, "count", "return how many there are",
              _loop("    {o} += 1\n", "0"), lambda v, p: len(v), terminal=True),
    Primitive("max", {INTS: INT}, "best", "return the largest one",
              _loop("    if x > {o}:\n        {o} = x\n", "{i}[0]"), lambda v, p: max(v), terminal=True),
    Primitive("min", {INTS: INT}, "low", "return the smallest one",
              _loop("    if x < {o}:\n        {o} = x\n", "{i}[0]"), lambda v, p: min(v), terminal=True),
    # list[int] -> dict[int, int]
    Primitive("count_each", {INTS: CI}, "counts", "count how often each number occurs",
              _loop("    {o}[x] = {o}.get(x, 0) + 1\n", "{{}}"), lambda v, p: dict(Counter(v))),
    # str -> str
    Primitive("upper", {TEXT: TEXT}, "up", "convert the text to upper case",
              _loop("    {o} += ch.upper()\n", '""'), lambda v, p: v.upper()),
    Primitive("reverse_text", {TEXT: TEXT}, "back", "reverse the text",
              _loop("    {o} = ch + {o}\n", '""'), lambda v, p: v[::-1]),
    Primitive("keep_vowels", {TEXT: TEXT}, "vowels", "keep only the vowels",
              _loop('    if ch.lower() in "aeiou":\n        {o} += ch\n', '""'),
              lambda v, p: "".join(c for c in v if c.lower() in VOWELS)),
    Primitive("drop_vowels", {TEXT: TEXT}, "plain", "remove the vowels",
              _loop('    if ch.lower() not in "aeiou":\n        {o} += ch\n', '""'),
              lambda v, p: "".join(c for c in v if c.lower() not in VOWELS)),
    Primitive("replace", {TEXT: TEXT}, "swapped", "replace each '{a}' with '{b}'",
              _loop('    {o} += "{b}" if ch == "{a}" else ch\n', '""'),
              lambda v, p: v.replace(p["a"], p["b"]),
              lambda rng, v: (lambda a: {"a": a, "b": rng.choice([c for c in LETTERS if c != a])})(
                  _char_of(rng, v))),
    # str -> int
    Primitive("count_char", {TEXT: INT}, "count", "return how many '{c}' characters there are",
              _loop('    if ch == "{c}":\n        {o} += 1\n', "0"), lambda v, p: v.count(p["c"]),
              lambda rng, v: {"c": _char_of(rng, v)}, terminal=True),
    Primitive("length", {TEXT: INT}, "size", "return the number of characters",
              _loop("    {o} += 1\n", "0"), lambda v, p: len(v), terminal=True),
    # str -> list[int], str -> dict[str, int]
    Primitive("word_lengths", {TEXT: INTS}, "lengths", "take the length of each word",
              "{o} = []\nfor word in {i}.split():\n    {o}.append(len(word))\n",
              lambda v, p: [len(w) for w in v.split()]),
    Primitive("count_chars", {TEXT: CS}, "freq", "count how often each character occurs",
              _loop("    {o}[ch] = {o}.get(ch, 0) + 1\n", "{{}}"), lambda v, p: dict(Counter(v))),
    # dict[int, int] | dict[str, int] -> ...
    Primitive("most_common", {CI: INT, CS: TEXT}, "top", "return the most frequent one (first on ties)",
              _loop("    if {o} is None or {i}[k] > {i}[{o}]:\n        {o} = k\n", "None"),
              lambda v, p: max(v, key=v.get), terminal=True),
    Primitive("top_count", {CI: INT, CS: INT}, "high", "return the highest count",
              _loop("    if {i}[k] > {o}:\n        {o} = {i}[k]\n", "0"), lambda v, p: max(v.values()),
              terminal=True),
    Primitive("num_distinct", {CI: INT, CS: INT}, "distinct", "return how many distinct ones there are",
              _loop("    {o} += 1\n", "0"), lambda v, p: len(v), terminal=True),
    Primitive("repeated", {CI: INTS, CS: TEXT}, "repeated", "keep those that occur more than once",
              {CI: _loop("    if {i}[k] > 1:\n        {o}.append(k)\n"),
               CS: _loop("    if {i}[k] > 1:\n        {o} += k\n", '""')},
              _repeated),
)
BY_NAME = {p.name: p for p in PRIMITIVES}

# Adjacent steps whose result is always empty or that undo/repeat each other.
EXCLUDED_BIGRAMS = frozenset({("keep_even", "keep_odd"), ("keep_odd", "keep_even"), ("keep_vowels", "drop_vowels"),
                              ("drop_vowels", "keep_vowels"), ("square", "absolute"), ("dedupe", "count_each")})


def _check_table() -> None:
    assert len(BY_NAME) == len(PRIMITIVES), "duplicate primitive names"
    vars_ = Counter(p.var for p in PRIMITIVES if not p.terminal)
    assert max(vars_.values()) == 1, f"non-terminal steps must write distinct variables: {vars_}"
    assert not {p.var for p in PRIMITIVES if p.terminal} & set(vars_), "a terminal step reuses a variable"
    assert not {p.var for p in PRIMITIVES} & {"x", "ch", "k", "word", "run", "nums", "s", "solve"}


_check_table()


# ---------------------------------------------------------------------------------------------
# One problem


def _types(steps: tuple[str, ...]) -> list[str]:
    """The value type before each step and after the last one."""
    t = next(t for t in START_TYPES if t in BY_NAME[steps[0]].types)
    out = [t]
    for name in steps:
        t = BY_NAME[name].types[t]
        out.append(t)
    return out


def signature(steps: tuple[str, ...]) -> str:
    types = _types(steps)
    return f"def solve({ARG[types[0]]}: {types[0]}) -> {types[-1]}"


def statement(steps: tuple[str, ...], params: list[dict]) -> str:
    types = _types(steps)
    body = ", then ".join(BY_NAME[s].phrase.format(**p) for s, p in zip(steps, params))
    if not BY_NAME[steps[-1]].terminal:
        body += ", and return the result"
    return f"Write {signature(steps)}: {body}. {READ_PHRASE[types[0]]} and print solve({ARG[types[0]]}). {ANSWER}"


def solution(steps: tuple[str, ...], params: list[dict]) -> str:
    """The reference program: solve() composing the idioms, then the fixed main block."""
    types = _types(steps)
    lines = [signature(steps) + ":"]
    var = ARG[types[0]]
    for name, p, t in zip(steps, params, types):
        prim = BY_NAME[name]
        code = prim.idiom(t).format(i=var, o=prim.var, e=ELEM[t], **p)
        lines += ["    " + line for line in code.splitlines()]
        var = prim.var
    lines.append(f"    return {var}")
    return "\n".join(lines) + "\n\n" + MAIN[types[0]]


def run_pipeline(steps: tuple[str, ...], params: list[dict], value: Any) -> list[Any] | None:
    """Every intermediate value (the input first), computed with the pure functions; None when a
    step would get an empty list, text or dict (the suite's problems never give one)."""
    values = [value]
    for name, p in zip(steps, params):
        if isinstance(values[-1], (list, str, dict)) and not values[-1]:
            return None
        values.append(BY_NAME[name].fn(values[-1], p))
    return values if _nonempty(values) else None


def format_input(value: Any) -> str:
    return (" ".join(map(str, value)) if isinstance(value, list) else value) + "\n"


def format_output(value: Any) -> str:
    return f"{value}\n"  # what print() writes


def _random_input(rng: random.Random, t: str) -> Any:
    if t == INTS:
        return [rng.randint(*INT_RANGE) for _ in range(rng.randint(*INT_LEN))]
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(*WORDS_PER_TEXT)))


def _nonempty(values: list[Any]) -> bool:
    return all(not isinstance(v, (list, str, dict)) or len(v) > 0 for v in values)


def _draw(steps: tuple[str, ...], rng: random.Random, n_tests: int, attempts: int,
          max_solution_chars: int | None = None, max_prompt_chars: int | None = None):
    """(params, inputs, outputs) with every intermediate value non-empty on every test and the
    statement and solution within the limits, or None. The parameters are drawn against the
    first input, so it exercises every step."""
    start = _types(steps)[0]
    for _ in range(attempts):
        first = _random_input(rng, start)
        params, value = [], first
        for name in steps:
            prim = BY_NAME[name]
            if isinstance(value, (list, str, dict)) and not value:
                break
            params.append(prim.sample(rng, value))
            value = prim.fn(value, params[-1])
        if len(params) < len(steps) or run_pipeline(steps, params, first) is None:
            continue
        if ((max_solution_chars is not None and len(solution(steps, params)) > max_solution_chars)
                or (max_prompt_chars is not None and len(statement(steps, params)) > max_prompt_chars)):
            continue
        inputs, outputs = [format_input(first)], [format_output(value)]
        for _ in range(40 * n_tests):
            if len(inputs) == n_tests:
                break
            candidate = _random_input(rng, start)
            text = format_input(candidate)
            values = run_pipeline(steps, params, candidate)
            if values is not None and text not in inputs:
                inputs.append(text)
                outputs.append(format_output(values[-1]))
        if len(inputs) == n_tests:
            return params, inputs, outputs
    return None


def make_problem(steps: tuple[str, ...], rng: random.Random, *, pid: str, split: str, seed: int,
                 n_tests: int = 5, max_solution_chars: int | None = None, max_prompt_chars: int | None = None,
                 attempts: int = 500) -> Problem:
    drawn = _draw(steps, rng, n_tests, attempts, max_solution_chars, max_prompt_chars)
    if drawn is None:
        raise RuntimeError(f"could not draw tests for composition {steps} ({pid})")
    params, inputs, outputs = drawn
    return Problem(pid, statement(steps, params), {"style": "stdio", "inputs": inputs, "outputs": outputs},
                   {"solution": solution(steps, params), "signature": signature(steps), "steps": list(steps),
                    "params": params, "split": split, "seed": seed})


# ---------------------------------------------------------------------------------------------
# Compositions and the split


def _chains(max_steps: int) -> list[tuple[str, ...]]:
    """Every type-correct pipeline of 2..max_steps distinct primitives, none after a terminal
    one, no excluded bigram; in a fixed order."""
    out: list[tuple[str, ...]] = []

    def grow(chain: tuple[str, ...], t: str) -> None:
        if len(chain) >= 2:
            out.append(chain)
        if len(chain) == max_steps or (chain and BY_NAME[chain[-1]].terminal):
            return
        for p in PRIMITIVES:
            if t in p.types and p.name not in chain and (not chain or (chain[-1], p.name) not in EXCLUDED_BIGRAMS):
                grow(chain + (p.name,), p.types[t])

    for start in START_TYPES:
        grow((), start)
    return out


@functools.lru_cache(maxsize=8)
def compositions(max_steps: int = 3, n_tests: int = 5, max_solution_chars: int | None = None,
                 max_prompt_chars: int | None = None) -> tuple[tuple[str, ...], ...]:
    """The usable compositions: those for which a probe (a fixed RNG, independent of the suite's
    seed) draws a problem (`n_tests` inputs with non-empty intermediate values, statement and
    solution within the length limits) within 20 attempts."""
    return tuple(steps for steps in _chains(max_steps)
                 if _draw(steps, random.Random(f"coderl-suite/probe/{'/'.join(steps)}"), n_tests, 20,
                          max_solution_chars, max_prompt_chars) is not None)


def bigrams(steps: tuple[str, ...]) -> set[tuple[str, str]]:
    return {(steps[j], steps[j + 1]) for j in range(len(steps) - 1)}


@dataclasses.dataclass(frozen=True)
class SuiteSplit:
    heldout_bigrams: frozenset
    train: tuple[tuple[str, ...], ...]
    heldout: tuple[tuple[str, ...], ...]


def split_compositions(seed: int, comps: tuple[tuple[str, ...], ...], heldout_fraction: float = 0.15,
                       min_train: int = 3, tag: str = "split") -> SuiteSplit:
    """Hold out a seeded `heldout_fraction` of the bigrams occurring in `comps`; a composition is
    held out iff it contains a held-out bigram. A bigram is skipped when holding it out would
    leave some primitive in fewer than `min_train` training compositions. `tag` names the draw
    (the train/held-out split is "split"; `reserve_for_rl` draws its own)."""
    all_bigrams = sorted(set().union(*(bigrams(c) for c in comps)))
    rng = random.Random(f"coderl-suite/{seed}/{tag}")
    order = list(all_bigrams)
    rng.shuffle(order)
    target = round(heldout_fraction * len(all_bigrams))
    containing: dict[tuple[str, str], list[tuple[str, ...]]] = {b: [] for b in all_bigrams}
    for c in comps:
        for b in bigrams(c):
            containing[b].append(c)
    train = set(comps)
    per_prim = Counter(p for c in comps for p in set(c))
    held = set()
    for b in order:
        if len(held) >= target:
            break
        moving = [c for c in containing[b] if c in train]
        loss = Counter(p for c in moving for p in set(c))
        if any(per_prim[p] - n < min_train for p, n in loss.items()):
            continue
        held.add(b)
        train.difference_update(moving)
        per_prim -= loss
    return SuiteSplit(frozenset(held), tuple(c for c in comps if c in train),
                      tuple(c for c in comps if c not in train))


# ---------------------------------------------------------------------------------------------
# The suite


@dataclasses.dataclass(frozen=True)
class SuiteConfig:
    seed: int = 0
    n_train: int = 3000
    n_heldout: int = 300
    n_tests: int = 5                 # hidden test cases per problem (the first is what the harvest traces)
    max_steps: int = 3               # pipelines of 2..max_steps primitives
    triple_fraction: float = 0.3     # share of problems with 3 steps (when max_steps >= 3)
    heldout_fraction: float = 0.15   # share of bigrams held out
    max_solution_chars: int | None = 340
    max_prompt_chars: int | None = 250


def _schedule(items: tuple, seed: int, split: str, kind: str, j: int, cache: dict) -> Any:
    """Item j of an endless sequence of seeded shuffles of `items` (each epoch covers all)."""
    epoch, pos = divmod(j, len(items))
    key = (kind, epoch)
    if key not in cache:
        order = list(items)
        random.Random(f"coderl-suite/{seed}/{split}/{kind}/{epoch}").shuffle(order)
        cache[key] = order
    return cache[key][pos]


def generate_suite(seed: int = 0, n_train: int = 3000, n_heldout: int = 300, **options) -> dict[str, list[Problem]]:
    """{"train": [...], "heldout": [...]} Problems; `options` are the other `SuiteConfig` fields."""
    cfg = SuiteConfig(seed=seed, n_train=n_train, n_heldout=n_heldout, **options)
    comps = compositions(cfg.max_steps, cfg.n_tests, cfg.max_solution_chars, cfg.max_prompt_chars)
    split = split_compositions(cfg.seed, comps, cfg.heldout_fraction)
    out = {}
    for name, pool, n in (("train", split.train, cfg.n_train), ("heldout", split.heldout, cfg.n_heldout)):
        pairs = tuple(c for c in pool if len(c) == 2)
        longer = tuple(c for c in pool if len(c) > 2)
        if n and not pool:
            raise ValueError(f"no {name} compositions (max_steps={cfg.max_steps}, length limits "
                             f"{cfg.max_solution_chars}/{cfg.max_prompt_chars})")
        f = cfg.triple_fraction if longer else 0.0
        if not pairs:
            f = 1.0
        cache: dict = {}
        problems = []
        for i in range(n):
            n_long = math.floor(i * f)                    # longer pipelines among problems 0..i-1
            if math.floor((i + 1) * f) > n_long:
                steps = _schedule(longer, cfg.seed, name, "long", n_long, cache)
            else:
                steps = _schedule(pairs, cfg.seed, name, "pairs", i - n_long, cache)
            rng = random.Random(f"coderl-suite/{cfg.seed}/{name}/{i}")
            problems.append(make_problem(steps, rng, pid=f"suite-{name}-{i:06d}", split=name, seed=cfg.seed,
                                         n_tests=cfg.n_tests, max_solution_chars=cfg.max_solution_chars,
                                         max_prompt_chars=cfg.max_prompt_chars))
        out[name] = problems
    return out


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.is_file() and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_probe(path: str | os.PathLike, heldout: Sequence[Problem], n: int = 32, record_input: str = "first") -> str:
    """Write the alignment probe's unseen programs to `path` (JSONL {"id", "program", "stdin"}): the
    first `n` held-out problems' reference solutions with the test input that `record_input`
    chooses (`data.records.record_input_index`: the first, or the shortest). Left untouched
    when its bytes would not change; returns the path."""
    rows = [{"id": p.id, "program": p.metadata["solution"],
             "stdin": p.tests["inputs"][record_input_index(p.tests["inputs"], record_input)]} for p in heldout[:n]]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_if_changed(path, "".join(json.dumps(r) + "\n" for r in rows).encode())
    return str(path)


def reserve_for_rl(train: Sequence[Problem], seed: int = 0, fraction: float = 0.25) -> tuple[list, list]:
    """Split training problems into (sft, rl) by composition, the way the held-out split is made:
    a seeded `fraction` of the bigrams of their compositions is reserved, and a problem goes to `rl`
    iff its composition contains a reserved bigram. A warm start fine-tuned on `sft` alone meets
    in `rl` compositions it never saw, as it does on the held-out split (whose bigrams occur in
    neither), so RL practises the skill held-out pass@1 measures: composing steps in new orders."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    steps = [tuple(p.metadata["steps"]) for p in train]
    reserved = set(split_compositions(seed, tuple(sorted(set(steps))), fraction, tag="rl-reserve").heldout
                   ) if fraction else set()
    sft, rl = [], []
    for problem, comp in zip(train, steps):
        (rl if comp in reserved else sft).append(problem)
    return sft, rl


def write_suite(out_dir: str | os.PathLike, seed: int = 0, n_train: int = 3000, n_heldout: int = 300,
                rl_reserve: float = 0.0, **options) -> dict[str, str]:
    """Write `train.jsonl` and `heldout.jsonl` (canonical problem JSONL) under `out_dir`; returns
    {"train": path, "heldout": path}. With `rl_reserve` > 0 also `sft.jsonl` and `rl.jsonl`, the
    training split divided by `reserve_for_rl`. Files whose bytes would not change are left untouched."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = generate_suite(seed, n_train, n_heldout, **options)
    if rl_reserve:
        splits["sft"], splits["rl"] = reserve_for_rl(splits["train"], seed, rl_reserve)
    paths = {}
    for name, problems in splits.items():
        path = out / f"{name}.jsonl"
        _write_if_changed(path, "".join(p.to_json() + "\n" for p in problems).encode())
        paths[name] = str(path)
    return paths


def build_suite_dataset(data_dir: str | os.PathLike, seed: int = 0, n_train: int = 3000, n_heldout: int = 300,
                        *, suite_options: dict | None = None, **build_kwargs):
    """Generate the suite into `<data_dir>/coderl_suite/seed<S>_<train>_<heldout>[_<options hash>]/`
    (`suite_options`: the other `SuiteConfig` fields) and build it as a
    tfds dataset under `data_dir` (split "train" = train, "test" = held-out), reused when the
    files did not change. `build_kwargs` go to `build_problem_dataset` (tokenizer,
    max_prompt_tokens, ...). Returns its `ProblemDataset`; read it with
    `make_problem_iterator(ds, split="train")`."""
    from coderl_jax.data.builder import build_problem_dataset

    suite_options = dict(suite_options or {})
    name = f"seed{seed}_{n_train}_{n_heldout}"
    if suite_options:
        name += "_" + hashlib.sha256(json.dumps(suite_options, sort_keys=True).encode()).hexdigest()[:12]
    src = Path(data_dir) / "coderl_suite" / name
    paths = write_suite(src, seed, n_train, n_heldout, **suite_options)
    return build_problem_dataset(paths["train"], data_dir, test_path=paths["heldout"], **build_kwargs)


def describe(splits: dict[str, list[Problem]]) -> dict[str, Any]:
    """Counts and median lengths, for the CLI and the docs."""
    out: dict[str, Any] = {"primitives": len(PRIMITIVES)}
    for name, problems in splits.items():
        comps = {tuple(p.metadata["steps"]) for p in problems}
        out[name] = {
            "problems": len(problems),
            "compositions": len(comps),
            "three_step": sum(len(p.metadata["steps"]) == 3 for p in problems),
            "prompt_chars_median": statistics.median(len(p.prompt) for p in problems) if problems else 0,
            "prompt_chars_max": max((len(p.prompt) for p in problems), default=0),
            "solution_chars_median": statistics.median(len(p.metadata["solution"]) for p in problems) if problems else 0,
            "solution_chars_max": max((len(p.metadata["solution"]) for p in problems), default=0),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coderl_jax.data.suite",
                                     description="Write the embedded task suite (train.jsonl, heldout.jsonl).")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=SuiteConfig.n_train, help="training problems")
    parser.add_argument("--heldout", type=int, default=SuiteConfig.n_heldout, help="held-out problems")
    parser.add_argument("--tests", type=int, default=SuiteConfig.n_tests, help="test cases per problem")
    args = parser.parse_args(argv)
    if args.train < 0 or args.heldout < 0 or args.tests < 1:
        parser.error("--train and --heldout must be >= 0, --tests >= 1")
    paths = write_suite(args.out, args.seed, args.train, args.heldout, n_tests=args.tests)
    for name, path in paths.items():
        print(f"{name}: {path}")
    splits = {name: [Problem.from_json(line) for line in open(path)] for name, path in paths.items()}
    print(json.dumps(describe(splits), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
