import json

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
