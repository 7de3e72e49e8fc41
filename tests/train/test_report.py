import json

import pytest

from coderl_jax.data.records import DataError
from coderl_jax.train.report import report, series, summary_table


def write_metrics(path, rows):
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_summary_table_and_plots(tmp_path):
    rows = [{"step": s, "reward/mean": 0.1 * s, "reward/pass_rate": 0.05 * s,
             **({"eval/pass@1": 0.2 + 0.1 * s} if s % 2 == 0 else {})} for s in range(1, 9)]
    write_metrics(tmp_path, rows)
    table, plots = report(tmp_path)
    lines = table.splitlines()
    reward = next(line for line in lines if "`reward/mean`" in line)
    # first 0.1 (step 1), last 0.8 (step 8), best 0.8, mean of the last 2 of 8 points = 0.75
    assert "| 0.100 (1) | 0.800 (8) | 0.800 | 0.750 |" in reward
    heldout = next(line for line in lines if "`eval/pass@1`" in line)
    assert "| 0.400 (2) | 1.000 (8) | 1.000 | 1.000 |" in heldout
    assert not any("align" in line for line in lines)  # never logged: no row
    assert sorted(p.name for p in plots) == ["pass_at_1.png", "reward.png"]  # no alignment metrics: no plot
    for p in plots:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_series_skips_missing_and_nonfinite():
    rows = [{"step": 1, "x": 1.0}, {"step": 2}, {"step": 3, "x": float("nan")}, {"step": 4, "x": 2}]
    assert series(rows, "x") == ([1, 4], [1.0, 2.0])
    assert summary_table([{"step": 1}]).count("\n") == 1  # header only


def test_report_skips_a_cut_last_line_and_names_a_bad_one(tmp_path):
    write_metrics(tmp_path, [{"step": 1, "reward/mean": 0.5}])
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "reward/me')  # the run was killed mid-write
    table, _ = report(tmp_path)
    assert "| 0.500 (1) | 0.500 (1) |" in next(line for line in table.splitlines() if "`reward/mean`" in line)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(DataError, match=r"metrics\.jsonl:2: invalid JSON"):
        report(tmp_path)


def test_moving_average_against_numpy():
    import numpy as np

    from coderl_jax.train.report import moving_average

    values = list(np.random.RandomState(0).rand(23))
    expected = np.convolve(values, np.ones(5) / 5, mode="valid")
    np.testing.assert_allclose(moving_average(values, 5), expected, rtol=1e-12)
    assert moving_average([1.0, 2.0], 5) == []
