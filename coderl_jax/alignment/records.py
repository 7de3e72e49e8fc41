"""The alignment record: one traced program, the unit of the CodeRL+ alignment task.

A record holds what the policy is asked about (the program, its input) and the truth the tracer
recorded (the program's stdout and the final values of the target variables). Records are plain
JSON so that the buffer can be checkpointed and a harvest can be inspected or replayed.

    program   the code as the model wrote it (the last ```python block of its response)
    stdin     the text fed to stdin ("" for call-style problems)
    call      for call-style problems, the call that was appended and printed, e.g. "f(3, [1, 2])"
    output    the program's actual stdout (the label; not the problem's expected output)
    targets   [{"name": qualified name ("x", "main.total"), "value": typed value (tracer form),
               "json": the value as JSON (tuples as lists, dict keys as strings)}] in the order
               asked (trace order; first-definition order under the official target rule)
    source    the problem id it was harvested from; `step` the training step that harvested it
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tracer.values import is_complete, is_literal, to_python


@dataclasses.dataclass(frozen=True)
class AlignmentRecord:
    program: str
    stdin: str
    output: str
    targets: tuple[dict, ...]
    call: str = ""
    source: str = ""
    step: int = 0

    @property
    def k(self) -> int:
        return len(self.targets)

    @property
    def target_names(self) -> list[str]:
        return [t["name"] for t in self.targets]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["targets"] = [dict(t) for t in self.targets]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AlignmentRecord":
        missing = [f for f in ("program", "stdin", "output", "targets") if f not in d]
        if missing:
            raise ValueError(f"alignment record: missing field(s) {missing}")
        return cls(program=d["program"], stdin=d["stdin"], output=d["output"],
                   targets=tuple(dict(t) for t in d["targets"]), call=d.get("call", ""),
                   source=d.get("source", ""), step=int(d.get("step", 0)))

    def key(self) -> tuple[str, str]:
        """What makes two records duplicates within a step: (input, actual output)."""
        return (self.stdin + "\x00" + self.call, self.output)


_MISS = object()


def jsonable(typed: dict) -> Any:
    """The value as JSON data (tuples as lists, dict keys as their str()), or `_MISS` when it has no
    faithful JSON form under the lenient comparison: sets, bytes, complex, nan/inf, objects, cut
    or cyclic values. Only such values are asked about: the answer is a JSON object."""
    if not (is_complete(typed) and is_literal(typed)):
        return _MISS
    return _to_json(to_python(typed))


def _to_json(x: Any) -> Any:
    if x is None or type(x) in (bool, int, str):
        return x
    if type(x) is float:
        return x if math.isfinite(x) else _MISS
    if type(x) in (list, tuple):
        items = [_to_json(v) for v in x]
        return _MISS if any(v is _MISS for v in items) else items
    if type(x) is dict:
        out = {}
        for k, v in x.items():
            if type(k) not in (str, int):  # JSON keys are strings; the lenient check matches keys by str()
                return _MISS
            key = k if type(k) is str else str(k)
            jv = _to_json(v)
            if jv is _MISS or key in out:
                return _MISS
            out[key] = jv
        return out
    return _MISS


def is_missing(x: Any) -> bool:
    return x is _MISS
