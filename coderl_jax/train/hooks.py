"""The training loop and what hangs on it.

`TrainLoop` runs `step_fn(step) -> metrics` for each step. Hooks hang on it with an `every`:

    loop.add_hook(evaluate, every=10, at_start=True)   # (step, metrics) -> more metrics or None
    loop.add_hook(save_checkpoint, every=5)
    loop.add_sink(metrics_writer.write)                  # (step, final row): every step

Hooks run after the step, in the order they were added, and may add metrics to the step's row;
`at_end` hooks also run at the last step, `at_start` hooks also run once before the first step of a
fresh run (step 0: the starting policy, the baseline every curve starts from). Sinks then receive
the finished row (with `time/step_s`): the metrics file, TensorBoard, the progress bar.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

HookFn = Callable[[int, dict], "dict | None"]
SinkFn = Callable[[int, dict], object]


@dataclasses.dataclass(frozen=True)
class Hook:
    fn: HookFn
    every: int  # run at steps divisible by this; 0: only at the start / end
    at_start: bool = False
    at_end: bool = True

    def due(self, step: int, last_step: int) -> bool:
        return bool(self.every and step % self.every == 0) or (self.at_end and step == last_step)


class TrainLoop:
    def __init__(self, step_fn: Callable[[int], dict], *, first_step: int, last_step: int):
        self.step_fn = step_fn
        self.first_step, self.last_step = first_step, last_step
        self.hooks: list[Hook] = []
        self.sinks: list[SinkFn] = []

    def add_hook(self, fn: HookFn, *, every: int, at_start: bool = False, at_end: bool = True) -> HookFn:
        self.hooks.append(Hook(fn, every, at_start, at_end))
        return fn

    def add_sink(self, fn: SinkFn) -> SinkFn:
        self.sinks.append(fn)
        return fn

    def run(self) -> dict:
        """Run the remaining steps; returns the last step's row ({} when none ran)."""
        if self.first_step == 1 and self.last_step >= 1:
            start = {}
            for hook in self.hooks:
                if hook.at_start:
                    start.update(hook.fn(0, start) or {})
            if start:
                self._emit(0, start)
        last: dict = {}
        for step in range(self.first_step, self.last_step + 1):
            t0 = time.perf_counter()
            m = self.step_fn(step)
            for hook in self.hooks:
                if hook.due(step, self.last_step):
                    m.update(hook.fn(step, m) or {})
            m["time/step_s"] = time.perf_counter() - t0
            self._emit(step, m)
            last = {"step": step, **m}
        return last

    def _emit(self, step: int, row: dict) -> None:
        for sink in self.sinks:
            sink(step, row)
