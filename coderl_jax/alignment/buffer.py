"""The alignment buffer: harvested records waiting to become alignment prompts.

Bounded (oldest records leave first; the paper: 20,000). Strategies for drawing prompts:

    recent    with replacement from the most recent harvest in the buffer (the paper's: step t
              trains on what step t-1 harvested)
    uniform   with replacement from everything in the buffer

`ready(n)` says whether the pool to draw from holds at least n distinct records; until it does the
loop fills the batch with code prompts. The whole buffer is JSON (`state()` / `restore()`) and is
saved with every checkpoint.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

from coderl_jax.alignment.records import AlignmentRecord

STRATEGIES = ("recent", "uniform")
STATE_FORMAT = "coderl_jax.alignment_buffer.v1"


class AlignmentBuffer:
    def __init__(self, max_size: int = 20_000, strategy: str = "recent"):
        if strategy not in STRATEGIES:
            raise ValueError(f"alignment.buffer_strategy must be one of {STRATEGIES}, got {strategy!r}")
        if max_size < 1:
            raise ValueError(f"alignment.buffer_size must be >= 1, got {max_size}")
        self.max_size, self.strategy = max_size, strategy
        self._records: collections.deque[AlignmentRecord] = collections.deque(maxlen=max_size)

    def __len__(self) -> int:
        return len(self._records)

    def add(self, records: list[AlignmentRecord]) -> None:
        self._records.extend(records)

    def pool(self) -> list[AlignmentRecord]:
        if not self._records:
            return []
        if self.strategy == "uniform":
            return list(self._records)
        latest = self._records[-1].step
        return [r for r in self._records if r.step == latest]

    def ready(self, n: int) -> bool:
        return n > 0 and len(self.pool()) >= n

    def sample(self, n: int, rng: np.random.Generator) -> list[AlignmentRecord]:
        pool = self.pool()
        if not pool:
            raise ValueError("the alignment buffer is empty")
        return [pool[i] for i in rng.integers(0, len(pool), size=n)]

    def state(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "max_size": self.max_size, "strategy": self.strategy,
                "records": [r.to_dict() for r in self._records]}

    def restore(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"not an alignment-buffer state ({STATE_FORMAT}): {str(state)[:200]}")
        self._records = collections.deque((AlignmentRecord.from_dict(r) for r in state["records"]),
                                          maxlen=self.max_size)
