"""The state probe's program sets: only the policy's failed programs that run and print are
harvested, and bad arguments are refused before any model is loaded."""

from __future__ import annotations

from coderl_jax.data import suite
from coderl_jax.experiments import state_probe
from coderl_jax.sft.trainer import code_response


def test_own_failures_are_the_failed_programs_that_run(pool, monkeypatch):
    heldout = suite.generate_suite(0, n_train=40, n_heldout=8)["heldout"]
    problems = heldout[:6]
    # even problems: the reference (passes); odd: the reference plus an extra line (runs, fails);
    # the last one: a program that raises before printing (fails, not harvestable)
    texts = []
    for i, p in enumerate(problems):
        sol = p.metadata["solution"]
        texts.append(code_response(sol if i % 2 == 0 else sol + "\nprint('extra')\n"))
    texts[-1] = code_response("raise SystemExit(3)\n")
    monkeypatch.setattr("coderl_jax.sft.scoring.greedy_texts", lambda *a, **k: list(texts))
    records, code = state_probe.own_failure_records(None, None, pool, problems, n=10, k=3, max_new_tokens=8)
    assert code["pass@1"] == 3 / 6
    assert sorted(r.source for r in records) == sorted(str(p.id) for p in problems[1:5:2])
    assert all(r.output.rstrip().endswith("extra") for r in records)
    assert code["harvest"]["considered"] == 3 and code["harvest"]["harvested"] == 2
    capped, _ = state_probe.own_failure_records(None, None, pool, problems, n=1, k=3, max_new_tokens=8)
    assert [r.source for r in capped] == [records[0].source]
    short, code = state_probe.own_failure_records(None, None, pool, problems, n=10, k=3, max_new_tokens=8,
                                                  max_output_chars=4)  # every output ends in "extra"
    assert short == [] and code["harvest"]["long_output"] == 2


def test_refuses_a_directory_without_a_model(tmp_path, capsys):
    assert state_probe.main([str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err
