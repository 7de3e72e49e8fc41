"""The runner and `coderl eval`: outputs, resume after interruption, the oracle check, a real model."""

from __future__ import annotations

import json

import pytest

from coderl_jax import cli
from coderl_jax.eval import runner
from coderl_jax.eval.benchmarks import load_benchmark
from coderl_jax.eval.generators import OracleGenerator, Sample


class Scripted(OracleGenerator):
    """References for some samples, a wrong answer for others (a fixed pattern per problem index),
    recording which problems it was asked for."""

    identity = {"scripted": 1}

    def __init__(self, items):
        self.index = {it.id: i for i, it in enumerate(items)}
        self.asked: list[str] = []

    def generate(self, items, settings, seed, batch_size=None):
        self.asked += [it.id for it in items]
        out = []
        for it in items:
            i = self.index[it.id]
            out.append([Sample(it.canonical if (i + j) % 4 == 0 else "```python\npass\n```", "eos", 3)
                        for j in range(settings.n)])
        return out


class Interrupt(Exception):
    pass


def _stable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "run"}


def test_resume_after_interruption_equals_one_run(tmp_path, pool):
    items = load_benchmark("humaneval", limit=7)
    settings = runner.settings_for("humaneval", n=3, k=(1, 2, 3), batch_size=2, timeout_s=20)
    whole = runner.evaluate("humaneval", items, Scripted(items), pool, tmp_path / "whole", settings, progress=False)
    assert whole["problems"] == 7 and whole["correct_samples"] == 5
    assert whole["pass@1"] == pytest.approx(5 / 21) and whole["pass@3"] == pytest.approx(5 / 7)

    chunks = []

    def stop_after_two(records):
        chunks.append([r["id"] for r in records])
        if len(chunks) == 2:
            raise Interrupt

    first = Scripted(items)
    with pytest.raises(Interrupt):
        runner.evaluate("humaneval", items, first, pool, tmp_path / "resumed", settings, progress=False,
                        on_chunk=stop_after_two)
    samples = tmp_path / "resumed" / "humaneval" / runner.SAMPLES_FILE
    assert len(samples.read_text().splitlines()) == 4
    with open(samples, "a") as f:
        f.write('{"id": "HumanEval/4", "cut sh')  # a line cut short by a kill
    second = Scripted(items)
    resumed = runner.evaluate("humaneval", items, second, pool, tmp_path / "resumed", settings, progress=False)
    assert second.asked == [it.id for it in items[4:]]  # only the remaining problems
    assert _stable(resumed) == _stable(whole)
    assert resumed["run"] == {**resumed["run"], "evaluated_now": 3, "resumed_from": 4}
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [r["id"] for r in lines] == [it.id for it in items]

    again = Scripted(items)  # a third run has nothing left to do
    assert _stable(runner.evaluate("humaneval", items, again, pool, tmp_path / "resumed", settings,
                                   progress=False)) == _stable(whole)
    assert again.asked == []
    with pytest.raises(runner.ResumeError, match=r"settings\.n: 3 -> 2"):
        runner.evaluate("humaneval", items, again, pool, tmp_path / "resumed",
                        runner.settings_for("humaneval", n=2, batch_size=2, timeout_s=20), progress=False)
    top = json.loads((tmp_path / "resumed" / runner.SUMMARY_FILE).read_text())
    assert top["benchmarks"]["humaneval"]["pass@3"] == whole["pass@3"]
    assert runner.metrics({"humaneval": whole}) == {f"eval/humaneval/pass@{k}": whole[f"pass@{k}"] for k in (1, 2, 3)}


def test_cli_oracle_humaneval(tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli.main(["eval", "--benchmark", "humaneval", "--oracle", "canonical", "--limit", "10", "--out", str(out),
                   "--workers", "2", "--timeout", "20", "--no-progress"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["benchmarks"]["humaneval"]["pass@1"] == 1.0
    assert summary["benchmarks"]["humaneval"]["problems"] == 10
    assert "| humaneval | 10 | 1 | 100.00 |" in (out / "summary.md").read_text()
    assert len((out / "humaneval" / "samples.jsonl").read_text().splitlines()) == 10
    assert "humaneval: pass@1 = 100.00% over 10 problems" in capsys.readouterr().out


def test_cli_oracle_on_sample_files_and_errors(tmp_path, sample_files, capsys):
    out = tmp_path / "out"
    rc = cli.main(["eval", "--benchmark", "cruxeval_o,cruxeval_i,lcb_execution,lcb_test_output,leetcode,mbpp",
                   "--path", f"cruxeval_o={sample_files['cruxeval']}",
                   "--path", f"cruxeval_i={sample_files['cruxeval']}",
                   "--path", f"lcb_execution={sample_files['lcb_execution']}",
                   "--path", f"lcb_test_output={sample_files['lcb_test_output']}",
                   "--path", f"leetcode={sample_files['leetcode']}", "--path", f"mbpp={sample_files['mbpp']}",
                   "--oracle", "canonical", "--out", str(out), "--workers", "2", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    benchmarks = json.loads((out / "summary.json").read_text())["benchmarks"]
    assert {name: s["pass@1"] for name, s in benchmarks.items()} == {
        "cruxeval_i": 1.0, "cruxeval_o": 1.0, "lcb_execution": 1.0, "lcb_test_output": 1.0, "leetcode": 1.0,
        "mbpp": 1.0}
    capsys.readouterr()
    rc = cli.main(["eval", "--benchmark", "lcb_codegen", "--path", str(sample_files["lcb_codegen"]), "--oracle",
                   "canonical", "--out", str(tmp_path / "o2")])
    assert rc == 2 and "has no reference solutions" in capsys.readouterr().err
    rc = cli.main(["eval", "--benchmark", "cruxeval_o", "--oracle", "canonical", "--out", str(tmp_path / "o3")])
    assert rc == 2 and "give its path (--path)" in capsys.readouterr().err
    rc = cli.main(["eval", "--benchmark", "humaneval", "--out", str(tmp_path / "o4")])
    assert rc == 2 and "exactly one of --model" in capsys.readouterr().err


def test_tiny_model_end_to_end(tmp_path):
    from coderl_jax.models.tiny import make_tiny_model

    model = make_tiny_model(tmp_path / "tiny")
    out = tmp_path / "out"
    # the chat prompts of HumanEval/0, 1, 2 have 539, 697 and 520 byte tokens: HumanEval/1 does not fit
    args = ["eval", "--benchmark", "humaneval", "--model", str(model), "--limit", "3", "--n", "2", "--k", "1,2",
            "--temperature", "1", "--max-new-tokens", "4", "--max-cache-len", "600", "--out", str(out),
            "--workers", "2", "--no-progress"]
    assert cli.main(args) == 0
    records = [json.loads(line) for line in (out / "humaneval" / "samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    for r in records:
        assert len(r["responses"]) == len(r["results"]) == len(r["finish_reasons"]) == 2
        assert r["prompt"].startswith("<|im_start|>user\n")
    for r in records[::2]:
        assert all(0 < t <= 4 for t in r["num_tokens"]) and all(f in ("eos", "length") for f in r["finish_reasons"])
    assert records[1]["finish_reasons"] == ["prompt_too_long"] * 2 and records[1]["num_correct"] == 0
    s = json.loads((out / "summary.json").read_text())["benchmarks"]["humaneval"]
    assert s["generator"]["model"] == str(model.absolute()) and set(s) >= {"pass@1", "pass@2", "statuses"}
    assert "| humaneval | 3 | 2 |" in (out / "summary.md").read_text()

    class Done(OracleGenerator):  # the same model identity; nothing may be generated on resume
        identity = s["generator"]

        def generate(self, items, settings, seed, batch_size=None):
            raise AssertionError("resumed run generated again")

    settings = runner.settings_for("humaneval", n=2, k=(1, 2), temperature=1.0, max_new_tokens=4)
    again = runner.evaluate("humaneval", load_benchmark("humaneval", limit=3), Done(), None, out, settings,
                            progress=False)
    assert again["run"]["evaluated_now"] == 0 and again["pass@2"] == s["pass@2"]


def test_load_model_from_a_training_checkpoint(tmp_path):
    import shutil

    from coderl_jax.eval.generators import load_model
    from coderl_jax.models.checkpoint import save_params
    from coderl_jax.models.hf_io import load_hf
    from coderl_jax.models.tiny import make_tiny_model

    model = make_tiny_model(tmp_path / "tiny")
    cfg, params = load_hf(model)
    save_params(tmp_path / "run" / "checkpoints" / "7", cfg, params)
    for f in model.glob("tokenizer*"):
        shutil.copy(f, tmp_path / "run")
    gen = load_model(tmp_path / "run" / "checkpoints")  # a checkpoints root means its latest step
    assert gen.identity["model"].endswith("checkpoints/7") and gen.sampler.cfg == cfg
    assert gen.tokenizer.encode("ab", add_special_tokens=False) == [97, 98]
