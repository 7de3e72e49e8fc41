"""benchmarks/sides.py: each benchmark side runs in a clean process of its own, repeats alternate."""

from __future__ import annotations

import importlib.util
import os
import textwrap

import pytest

# loaded from its file: putting benchmarks/ on sys.path would let benchmarks/tracer.py shadow the tracer package
_spec = importlib.util.spec_from_file_location(
    "benchmark_sides", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "sides.py"))
_sides = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_sides)
SideError, Sides = _sides.SideError, _sides.Sides

FACTORIES = textwrap.dedent("""
    import os, sys

    def counter(start):
        state = {"n": start}
        def run(step=1):
            state["n"] += step
            return {"pid": os.getpid(), "n": state["n"], "numpy": "numpy" in sys.modules}
        return run, {"pid": os.getpid(), "start": start}

    def broken():
        raise ValueError("no such model file: weights.bin")

    def noisy():
        print("a library printing to stdout")
        return (lambda: 7), {}
""")


@pytest.fixture
def env(tmp_path):
    (tmp_path / "side_factories.py").write_text(FACTORIES)
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def test_each_side_has_its_own_clean_process_and_state(env):
    import numpy

    assert numpy  # the parent has it; a side must not inherit it

    with Sides({"a": ("side_factories:counter", {"start": 0}), "b": ("side_factories:counter", {"start": 100})},
               cpu_tuning=False, settle_s=0.0, env=env) as sides:
        assert sides.info["a"]["start"] == 0 and sides.info["b"]["start"] == 100
        ra, rb = sides.run("a"), sides.run("b", step=5)
        ra2 = sides.run("a")
        assert ra["pid"] == ra2["pid"] == sides.pid("a") != os.getpid()  # long-lived, not the parent
        assert rb["pid"] == sides.pid("b") != ra["pid"]
        assert (ra["n"], ra2["n"], rb["n"]) == (1, 2, 105)  # state lives on in each side, apart
        assert not ra["numpy"] and not rb["numpy"]
        assert sides.order(0) == ["a", "b"] and sides.order(1) == ["b", "a"]


def test_a_failing_side_names_itself_and_its_error(env):
    with pytest.raises(SideError, match=r"side 'bad' failed:(.|\n)*no such model file: weights.bin"):
        Sides({"good": ("side_factories:counter", {"start": 0}), "bad": ("side_factories:broken", {})},
              cpu_tuning=False, env=env)


def test_printing_in_a_side_does_not_break_the_protocol(env):
    with Sides({"n": ("side_factories:noisy", {})}, cpu_tuning=False, settle_s=0.0, env=env) as sides:
        assert sides.run("n") == 7
