"""The embedded task suite: determinism, the compositional split, lengths, reference solutions in
the sandbox, the harvest property, and the tfds + grain path."""

import json
import random

import pytest

from coderl_jax.data import Problem
from coderl_jax.data import suite as S

LEN_PROMPT, LEN_SOLUTION = S.SuiteConfig.max_prompt_chars, S.SuiteConfig.max_solution_chars


@pytest.fixture(scope="module")
def default_suite():
    return S.generate_suite(seed=0)  # the default size: 3000 train, 300 held-out


@pytest.fixture(scope="module")
def sample(default_suite):
    """30 problems spread over both splits (every step count, both input types)."""
    rng = random.Random(1)
    return rng.sample(default_suite["train"], 20) + rng.sample(default_suite["heldout"], 10)


def test_deterministic_bytes_and_seeds(tmp_path):
    a = S.write_suite(tmp_path / "a", seed=0, n_train=150, n_heldout=30)
    b = S.write_suite(tmp_path / "b", seed=0, n_train=150, n_heldout=30)
    c = S.write_suite(tmp_path / "c", seed=1, n_train=150, n_heldout=30)
    for split in S.SPLITS:
        data = open(a[split], "rb").read()
        assert data == open(b[split], "rb").read()
        assert data != open(c[split], "rb").read()
        assert data.count(b"\n") == {"train": 150, "heldout": 30}[split]
    # problem i depends on (seed, split, i) only: a smaller suite is a prefix of a larger one
    small = S.generate_suite(seed=0, n_train=40, n_heldout=7)
    lines = open(a["train"]).read().splitlines()
    assert [p.to_json() for p in small["train"]] == lines[:40]
    assert [p.to_json() for p in small["heldout"]] == open(a["heldout"]).read().splitlines()[:7]
    # an unchanged file is not rewritten
    mtime = (tmp_path / "a" / "train.jsonl").stat().st_mtime_ns
    S.write_suite(tmp_path / "a", seed=0, n_train=150, n_heldout=30)
    assert (tmp_path / "a" / "train.jsonl").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_is_compositional(seed):
    comps = S.compositions(3, 5, LEN_SOLUTION, LEN_PROMPT)
    split = S.split_compositions(seed, comps)
    train, heldout = set(split.train), set(split.heldout)
    assert train and heldout and not train & heldout and train | heldout == set(comps)
    # training never shows a held-out bigram; every held-out composition has one
    assert all(not S.bigrams(c) & split.heldout_bigrams for c in train)
    assert all(S.bigrams(c) & split.heldout_bigrams for c in heldout)
    # every primitive appears in training; some held-out compositions are pairs
    assert {p for c in train for p in c} == set(S.BY_NAME)
    assert any(len(c) == 2 for c in heldout)
    if seed:
        assert split.heldout_bigrams != S.split_compositions(0, comps).heldout_bigrams


def test_generated_splits(default_suite):
    comps = S.compositions(3, 5, LEN_SOLUTION, LEN_PROMPT)
    split = S.split_compositions(0, comps)
    train = {tuple(p.metadata["steps"]) for p in default_suite["train"]}
    heldout = {tuple(p.metadata["steps"]) for p in default_suite["heldout"]}
    assert train <= set(split.train) and heldout <= set(split.heldout) and not train & heldout
    assert {s for c in train for s in c} == set(S.BY_NAME)  # every primitive is trained on
    assert {c for c in split.train if len(c) == 2} <= train  # every training pair is used
    ids = [p.id for ps in default_suite.values() for p in ps]
    assert len(ids) == len(set(ids)) == 3300
    for name, problems in default_suite.items():
        assert [p.metadata["split"] for p in problems] == [name] * len(problems)
        assert 0.25 < sum(len(p.metadata["steps"]) == 3 for p in problems) / len(problems) < 0.35


def test_reserve_for_rl_splits_training_by_bigram(default_suite, tmp_path):
    train = default_suite["train"]
    sft, rl = S.reserve_for_rl(train, seed=0, fraction=0.25)
    assert sorted(p.id for p in sft + rl) == sorted(p.id for p in train)  # a partition, nothing lost
    sft_c, rl_c = {tuple(p.metadata["steps"]) for p in sft}, {tuple(p.metadata["steps"]) for p in rl}
    assert sft_c and rl_c and not sft_c & rl_c
    sft_bigrams = set().union(*map(S.bigrams, sft_c))
    assert all(S.bigrams(c) - sft_bigrams for c in rl_c)  # every reserved composition has an unseen bigram
    assert {s for c in sft_c for s in c} == set(S.BY_NAME)  # the warm start still sees every primitive
    assert 0.2 < len(rl) / len(train) < 0.4
    # its own draw, not the held-out one; deterministic; fraction 0 reserves nothing
    held = set().union(*(S.bigrams(tuple(p.metadata["steps"])) for p in default_suite["heldout"]))
    assert not set().union(*map(S.bigrams, rl_c)) <= held
    assert [p.id for p in S.reserve_for_rl(train, seed=0, fraction=0.25)[1]] == [p.id for p in rl]
    assert S.reserve_for_rl(train, seed=0, fraction=0.0) == (list(train), [])
    with pytest.raises(ValueError, match="fraction"):
        S.reserve_for_rl(train, fraction=1.0)
    paths = S.write_suite(tmp_path, seed=0, n_train=200, n_heldout=20, rl_reserve=0.25)
    counts = {k: open(v).read().count("\n") for k, v in paths.items()}
    assert counts["sft"] + counts["rl"] == counts["train"] == 200 and counts["rl"] > 0


def test_records_and_lengths(default_suite):
    for problems in default_suite.values():
        for p in problems:
            assert Problem.from_json(p.to_json()) == p
            assert p.prompt.endswith("Answer with a ```python code block.") and len(p.prompt) <= LEN_PROMPT
            sol, meta = p.metadata["solution"], p.metadata
            assert len(sol) <= LEN_SOLUTION and 8 <= len(sol.splitlines()) <= 18
            assert sol.startswith(meta["signature"] + ":\n") and meta["signature"] in p.prompt
            assert set(meta) == {"solution", "signature", "steps", "params", "split", "seed"} and meta["seed"] == 0
            tests = p.tests
            assert tests["style"] == "stdio" and len(tests["inputs"]) == len(tests["outputs"]) == 5
            assert len(set(tests["inputs"])) == 5
            assert all(s.endswith("\n") and s.count("\n") == 1 for s in tests["inputs"] + tests["outputs"])
    prompts = [len(p.prompt) for ps in default_suite.values() for p in ps]
    assert sorted(prompts)[len(prompts) // 2] <= 220


def test_pure_functions_cover_every_step_on_first_input(default_suite):
    """The expected outputs are the pure pipeline's; on the first input every intermediate value
    is non-empty, so the traced program exercises every step."""
    for p in default_suite["train"][:500] + default_suite["heldout"]:
        steps, params = tuple(p.metadata["steps"]), p.metadata["params"]
        for i, (text, out) in enumerate(zip(p.tests["inputs"], p.tests["outputs"])):
            start = S._types(steps)[0]
            value = list(map(int, text.split())) if start == S.INTS else text[:-1]
            values = S.run_pipeline(steps, params, value)
            assert values is not None, (p.id, i)
            assert S.format_output(values[-1]) == out


def test_reference_solutions_in_the_sandbox(pool, sample):
    results = pool.run_tests([{"id": p.id, "program": p.metadata["solution"], "tests": p.tests, "timeout_s": 5}
                              for p in sample])
    assert [r["status"] for r in results] == ["passed"] * len(sample), [r for r in results if not r["passed"]][:2]
    # exactly the bytes the pure functions predict, on every input
    jobs = [(p, i) for p in sample for i in range(len(p.tests["inputs"]))]
    traces = pool.trace([{"program": p.metadata["solution"], "stdin": p.tests["inputs"][i]} for p, i in jobs])
    for (p, i), t in zip(jobs, traces):
        assert t["status"] == "ok" and t["stdout"] == p.tests["outputs"][i], (p.id, i, t["stdout"])


def test_first_input_has_function_locals_to_harvest(pool, sample):
    traces = pool.trace([{"program": p.metadata["solution"], "stdin": p.tests["inputs"][0], "check_determinism": True}
                         for p in sample])
    for p, t in zip(sample, traces):
        assert t["status"] == "ok" and not t.get("nondeterministic"), (p.id, t)
        local = [name for name in t["variables"] if name.startswith("solve.")]
        assert len(local) >= 3, (p.id, local)  # the argument, one variable per step, loop variables
        for step in p.metadata["steps"]:
            assert f"solve.{S.BY_NAME[step].var}" in local
    # and the harvest itself takes them (a failed rollout that printed the reference's output)
    from coderl_jax.alignment.harvest import harvest

    responses = [f"```python\n{p.metadata['solution']}```" for p in sample]
    records, counts = harvest(pool, sample, responses, [0.0] * len(sample), k=3, targets="last")
    assert counts["harvested"] == len(records) == len(sample) - counts["duplicate"]
    assert all(len(r.targets) == 3 for r in records)


def test_tfds_build_and_grain(tmp_path):
    from coderl_jax.data.pipeline import make_problem_iterator

    ds = S.build_suite_dataset(tmp_path / "tfds", seed=0, n_train=40, n_heldout=10)
    assert ds.built and ds.splits == {"train": 40, "test": 10}
    expected = S.generate_suite(seed=0, n_train=40, n_heldout=10)
    for split, name in S.TFDS_SPLITS.items():
        it = make_problem_iterator(ds, split=name, shuffle=False, num_epochs=1, shard_index=0, shard_count=1)
        assert list(it) == expected[split]
    again = S.build_suite_dataset(tmp_path / "tfds", seed=0, n_train=40, n_heldout=10)
    assert not again.built and again.path == ds.path
    it = make_problem_iterator(again.path, split="train", seed=3, batch_size=8, shard_index=0, shard_count=1)
    assert {p.id for p in next(it)} <= {p.id for p in expected["train"]}


def test_cli(tmp_path, capsys):
    assert S.main(["--out", str(tmp_path), "--seed", "2", "--train", "12", "--heldout", "4"]) == 0
    out = capsys.readouterr().out
    stats = json.loads(out[out.index("{"):])
    assert stats["primitives"] == len(S.PRIMITIVES) and stats["train"]["problems"] == 12
    rows = [json.loads(line) for line in open(tmp_path / "heldout.jsonl")]
    assert [r["id"] for r in rows] == [f"suite-heldout-{i:06d}" for i in range(4)]
    assert all(r["metadata"]["seed"] == 2 and r["metadata"]["split"] == "heldout" for r in rows)
