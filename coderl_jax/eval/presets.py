"""Named evaluation presets: a setting for each of several benchmarks, applied in one go.

    coderl eval --preset paper --path leetcode=... --path lcb_codegen=... ... --model DIR --out DIR

A preset names its benchmarks, the EvalSettings fields each one takes over the benchmark's own
defaults, and the contest-date window of the benchmarks that have one. Options given explicitly
(`--n`, `--max-new-tokens`, `--start-date`, ...) still win. `paper` is the paper's evaluation
(CodeRL+, arXiv 2510.18471); docs/paper.md sets it beside the paper's table.

| benchmark (paper's name)                 | n  | T   | top-p | new tokens | other                     |
|------------------------------------------|----|-----|-------|------------|---------------------------|
| humaneval (HumanEval, base tests)        | 1  | 0   | 1.0   | 4,096      |                           |
| leetcode (LeetCode, PRIME's test set)    | 1  | 0   | 1.0   | 8,192      |                           |
| lcb_codegen (LiveCodeBench release_v4)   | 10 | 0.2 | 0.95  | 4,096      | contests 2023-05-01..2024-11-01 |
| lcb_execution_boxed (code reasoning)     | 1  | 0   | 1.0   | 4,096      | answer as \\boxed{...}     |
| lcb_test_output (test output prediction) | 10 | 0.2 | 0.95  | 4,096      |                           |
"""

from __future__ import annotations

import dataclasses

from coderl_jax.eval.benchmarks import get_benchmark
from coderl_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class EvalPreset:
    name: str
    description: str
    settings: dict[str, dict]  # benchmark -> EvalSettings fields over the benchmark's defaults
    dates: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)  # benchmark -> (first, last)

    def __post_init__(self):
        for name in [*self.settings, *self.dates]:
            get_benchmark(name)  # an unknown benchmark raises, naming the known ones
        stray = sorted(set(self.dates) - set(self.settings))
        if stray:
            raise ValueError(f"preset {self.name!r}: dates for benchmarks it does not run: {stray}")

    @property
    def benchmarks(self) -> list[str]:
        return list(self.settings)

    def settings_of(self, benchmark: str) -> dict:
        if benchmark not in self.settings:
            raise ValueError(f"preset {self.name!r} has no setting for benchmark {benchmark!r}; "
                             f"it covers {', '.join(self.settings)}")
        return dict(self.settings[benchmark])

    def date_window(self, benchmark: str) -> tuple[str | None, str | None]:
        return self.dates.get(benchmark, (None, None))


PRESETS: Registry[EvalPreset] = Registry("evaluation preset")

_GREEDY = dict(n=1, k=(1,), temperature=0.0, top_p=1.0)
_SAMPLED = dict(n=10, k=(1,), temperature=0.2, top_p=0.95)

PAPER = PRESETS.register("paper", EvalPreset(
    name="paper",
    description="the paper's evaluation: pass@1, greedy code generation, sampled LiveCodeBench, boxed code reasoning",
    settings={
        "humaneval": dict(_GREEDY, max_new_tokens=4096),
        "leetcode": dict(_GREEDY, max_new_tokens=8192),
        "lcb_codegen": dict(_SAMPLED, max_new_tokens=4096),
        "lcb_execution_boxed": dict(_GREEDY, max_new_tokens=4096),
        "lcb_test_output": dict(_SAMPLED, max_new_tokens=4096),
    },
    dates={"lcb_codegen": ("2023-05-01", "2024-11-01")},
))


def get_preset(name: str) -> EvalPreset:
    return PRESETS.get(name)
