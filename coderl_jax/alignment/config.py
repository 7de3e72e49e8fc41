"""The alignment part of a training config (`TrainConfig.alignment`), with the paper's ablation
switches. Defaults follow the paper and its official code except where noted; the noted
extensions (`targets`, `harvest_calls`, `prompt`, `record_input`) and the checks the official code does not make
(`check_determinism`, `max_value_chars`, `max_output_chars`) have switches whose official values the paper configs
use (coderl_jax/configs/paper_settings.py, docs/paper.md)."""

from __future__ import annotations

import dataclasses

from coderl_jax.alignment.buffer import STRATEGIES as BUFFER_STRATEGIES
from coderl_jax.data.records import RECORD_INPUTS
from coderl_jax.alignment.prompts import LAYOUTS as PROMPT_LAYOUTS
from coderl_jax.alignment.rewards import VARIANTS
from coderl_jax.alignment.targets import STRATEGIES as TARGET_STRATEGIES

MODES = ("off", "coderl", "only")


@dataclasses.dataclass(frozen=True)
class AlignmentConfig:
    # off: plain GRPO.  coderl: code + alignment prompts (CodeRL+).  only: code prompts are still
    # rolled out and harvested (the alignment task needs programs) but only alignment rows train.
    mode: str = "off"
    alpha: float = 0.6  # fraction of each step's prompts that are code prompts (0.4 alignment)
    k: int = 3  # target variables per record (<= 0: all eligible)
    # last (ordered by last assignment, function locals included; this project's) | official (module
    # names of simple types, ordered by first definition; the paper's) | random | all | loop
    targets: str = "last"
    harvest_calls: bool = True  # trace call-style programs through an appended call (the official code drops them)
    # which test input a record (harvested or probed) runs on: first (the official) | shortest
    # (the shortest rendering: smaller values to state; this project's, for small policies)
    record_input: str = "first"
    prompt: str = "compact"  # compact (this project's layout) | official (the official prompt's order and content)
    reward: str = "official"  # official | fraction | strict | likelihood
    per_variable_credit: bool = False  # each value's tokens carry that value's own advantage
    buffer_size: int = 20_000
    buffer_strategy: str = "recent"  # recent (the paper's) | uniform
    min_records: int = 0  # distinct records needed before mixing (0 = alignment prompts per step)
    harvest_timeout_s: float = 5.0
    check_determinism: bool = True  # trace twice, drop programs whose output or values differ (official: once)
    max_value_chars: int = 200  # values with longer renderings are not asked about (<= 0: no limit, the official)
    # programs whose output (stripped) is longer are not harvested or probed (<= 0: no limit, the official);
    # with a small max_value_chars it makes the records easier for small policies
    max_output_chars: int = 0
    answer_tokens: int = 256  # room for the teacher-forced true answer (likelihood reward, probe)
    probe_path: str = ""  # JSONL of held-out programs ({"program", "stdin"}) for the probe metric
    probe_max: int = 64

    def validate(self) -> None:
        def need(cond, msg):
            if not cond:
                raise ValueError(f"config: alignment.{msg}")

        need(self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}")
        need(0.0 <= self.alpha <= 1.0, f"alpha={self.alpha} must be in [0, 1]")
        need(self.targets in TARGET_STRATEGIES, f"targets must be one of {TARGET_STRATEGIES}, got {self.targets!r}")
        need(self.record_input in RECORD_INPUTS,
             f"record_input must be one of {RECORD_INPUTS}, got {self.record_input!r}")
        need(self.prompt in PROMPT_LAYOUTS, f"prompt must be one of {PROMPT_LAYOUTS}, got {self.prompt!r}")
        for name in ("harvest_calls", "check_determinism", "per_variable_credit"):
            value = getattr(self, name)
            need(type(value) is bool, f"{name} must be true or false, got {value!r}")
        need(type(self.k) is int, f"k must be an integer, got {self.k!r}")
        need(type(self.max_value_chars) is int,
             f"max_value_chars must be an integer (<= 0: no limit), got {self.max_value_chars!r}")
        need(type(self.max_output_chars) is int,
             f"max_output_chars must be an integer (<= 0: no limit), got {self.max_output_chars!r}")
        need(self.reward in VARIANTS, f"reward must be one of {VARIANTS}, got {self.reward!r}")
        need(self.buffer_strategy in BUFFER_STRATEGIES,
             f"buffer_strategy must be one of {BUFFER_STRATEGIES}, got {self.buffer_strategy!r}")
        need(self.buffer_size >= 1, f"buffer_size={self.buffer_size} must be >= 1")
        need(self.harvest_timeout_s > 0, "harvest_timeout_s must be > 0")
        need(self.answer_tokens >= 16, "answer_tokens must be >= 16")

    def split(self, prompts_per_step: int) -> tuple[int, int]:
        """(code prompts, alignment prompts) of a mixed step: 128 -> (77, 51) as in the paper."""
        if self.mode == "off":
            return prompts_per_step, 0
        n_code = int(round(self.alpha * prompts_per_step))
        return n_code, prompts_per_step - n_code
