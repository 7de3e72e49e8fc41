"""The training loop's hooks: when they run, what they add to a step's row, what sinks receive."""

from __future__ import annotations

import pytest

from coderl_jax.train.hooks import TrainLoop


def _loop(first, last, calls):
    def step_fn(step):
        calls.append(("step", step))
        return {"loss": float(step)}

    return TrainLoop(step_fn, first_step=first, last_step=last)


def test_hooks_run_every_n_steps_and_at_the_end_in_order():
    calls, rows = [], []
    loop = _loop(1, 7, calls)
    loop.add_hook(lambda s, m: calls.append(("eval", s)) or {"eval": 10 * s}, every=3, at_start=True)
    loop.add_hook(lambda s, m: calls.append(("ckpt", s)) or {"seen_eval": m.get("eval")}, every=2, at_end=False)
    loop.add_sink(lambda s, m: rows.append((s, dict(m))))
    last = loop.run()
    assert [c for c in calls if c[0] == "eval"] == [("eval", 0), ("eval", 3), ("eval", 6), ("eval", 7)]
    assert [c for c in calls if c[0] == "ckpt"] == [("ckpt", 2), ("ckpt", 4), ("ckpt", 6)]
    # hooks see the metrics of hooks added before them, in the same step
    assert dict(rows)[6]["seen_eval"] == 60 and dict(rows)[4]["seen_eval"] is None
    assert rows[0] == (0, {"eval": 0})  # the starting policy's row has no step metrics
    assert [s for s, _ in rows] == list(range(8))
    assert all("time/step_s" in m for s, m in rows if s)
    assert last["step"] == 7 and last["eval"] == 70 and last["loss"] == 7.0


def test_a_resumed_run_skips_the_start_hooks():
    calls = []
    loop = _loop(4, 5, calls)
    loop.add_hook(lambda s, m: calls.append(("eval", s)), every=10, at_start=True)
    loop.run()
    assert calls == [("step", 4), ("step", 5), ("eval", 5)]


def test_a_hook_can_stop_the_run():
    calls = []
    loop = _loop(1, 9, calls)

    def stop(step, m):
        if step == 2:
            raise RuntimeError("stop")

    loop.add_hook(stop, every=1)
    with pytest.raises(RuntimeError):
        loop.run()
    assert calls == [("step", 1), ("step", 2)]
