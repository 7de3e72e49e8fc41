"""A table from name to object that a research fork extends with a decorator.

    REWARDS = Registry("reward")

    @REWARDS.register("unit_tests")
    def unit_test_reward(...): ...

    REWARDS.get("unit_tests")   # an unknown name raises ValueError listing the known ones

Rewards (`coderl_jax.rl.rewards`), advantage estimators (`coderl_jax.rl.advantages`) and
evaluation benchmarks (`coderl_jax.eval.benchmarks`) are registries. Registering a name again
replaces the earlier entry. This module imports nothing from coderl_jax.
"""

from __future__ import annotations

from typing import Any, Generic, Iterator, TypeVar

T = TypeVar("T")

_MISSING: Any = object()


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind  # what an entry is, for error messages: "reward", "benchmark", ...
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T = _MISSING) -> Any:
        """`@registry.register(name)` stores the decorated object and returns it unchanged;
        `registry.register(name, entry)` stores `entry` and returns it."""
        if entry is not _MISSING:
            self._entries[name] = entry
            return entry

        def wrap(obj: T) -> T:
            self._entries[name] = obj
            return obj

        return wrap

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or 'none'}") from None

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
