import json

import pytest

from coderl_jax.data.records import DataError
from coderl_jax.train.metrics import MetricsWriter, read_metrics


def test_jsonl_records_and_resume_truncation(tmp_path):
    w = MetricsWriter(tmp_path)
    for step in range(1, 6):
        w.write(step, {"reward_mean": step / 10, "loss": float("nan") if step == 3 else 0.5})
    w.close()
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[2]["loss"] == "nan" and rows[0]["reward_mean"] == 0.1
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "reward_me')  # a line cut by SIGKILL
    w = MetricsWriter(tmp_path, resume_step=3)  # resumed from the step-3 checkpoint
    w.write(4, {"reward_mean": 0.4})
    w.close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["reward_mean"] == 0.4
    assert any((tmp_path / "tensorboard").iterdir())  # event files written


def test_read_metrics_skips_only_a_cut_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')  # killed while writing step 3
    assert read_metrics(path) == [{"step": 1}, {"step": 2}]
    assert read_metrics(tmp_path) == [{"step": 1}, {"step": 2}]  # a run directory works too
    path.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')  # damage that is not a cut last line
    with pytest.raises(DataError) as e:
        read_metrics(path)
    assert (e.value.path, e.value.row) == (str(path), 2)
    with pytest.raises(DataError, match=r"metrics\.jsonl:2: invalid JSON"):
        MetricsWriter(tmp_path, resume_step=1, tensorboard=False)  # resuming does not silently drop step 3
    path.write_text('{"step": 1}\n[2]\n{"step": 3, "lo')  # two bad lines at the end: the first is not cut
    with pytest.raises(DataError, match=r"metrics\.jsonl:2: row is a JSON list"):
        read_metrics(path)
