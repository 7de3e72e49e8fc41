"""The supervised warm start: examples, loss (vs NumPy), a few steps, the saved directory, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from coderl_jax.data.records import Problem
from coderl_jax.sft import trainer as sft

SOLUTIONS = {
    "add": ("Read two integers a and b on one line and print a + b.",
            "def solve(a, b):\n    return a + b\n\n\nif __name__ == \"__main__\":\n"
            "    a, b = map(int, input().split())\n    print(solve(a, b))\n",
            ["1 2\n", "10 -3\n"], ["3\n", "7\n"]),
    "double": ("Read an integer n and print 2 * n.",
               "def solve(n):\n    result = 2 * n\n    return result\n\n\nif __name__ == \"__main__\":\n"
               "    n = int(input())\n    print(solve(n))\n",
               ["4\n", "-5\n"], ["8\n", "-10\n"]),
    "count_vowels": ("Read a word and print how many vowels (aeiou) it has.",
                     "def solve(word):\n    count = 0\n    for ch in word:\n        if ch in \"aeiou\":\n"
                     "            count += 1\n    return count\n\n\nif __name__ == \"__main__\":\n"
                     "    print(solve(input().strip()))\n",
                     ["banana\n", "sky\n"], ["3\n", "0\n"]),
    "sum_to_n": ("Read n and print 1 + 2 + ... + n.",
                 "def solve(n):\n    total = 0\n    for i in range(1, n + 1):\n        total += i\n"
                 "    return total\n\n\nif __name__ == \"__main__\":\n    print(solve(int(input())))\n",
                 ["4\n", "10\n"], ["10\n", "55\n"]),
}


def fixture_problems(split: str = "train") -> list[Problem]:
    return [Problem(f"{split}-{name}", f"{text} Answer with a ```python code block.",
                    {"style": "stdio", "inputs": inputs, "outputs": outputs},
                    {"solution": solution, "split": split})
            for name, (text, solution, inputs, outputs) in SOLUTIONS.items()]


def write_jsonl(path, problems):
    path.write_text("".join(p.to_json() + "\n" for p in problems))
    return path


@pytest.fixture(scope="module")
def tokenizer():
    from coderl_jax.models.bpe import train_bpe_tokenizer

    texts = [t for ex in sft.code_examples(fixture_problems()) for t in (ex.prompt, ex.response)]
    return train_bpe_tokenizer(texts * 4, vocab_size=320)


def tiny_cfg(tok):
    return sft.sft_model_config(tok, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                                intermediate_size=64)


def test_code_examples_answer_in_the_code_reward_format():
    from coderl_jax.data.responses import extract_code

    problems = fixture_problems() + [Problem("no-solution", "Print 1.", {"style": "stdio", "inputs": [""],
                                                                          "outputs": ["1\n"]})]
    examples = sft.code_examples(problems)
    assert [e.source for e in examples] == [p.id for p in problems[:-1]]
    for ex, p in zip(examples, problems):
        assert ex.kind == "code" and ex.prompt == p.prompt
        assert extract_code(ex.response) == p.metadata["solution"].strip("\n")


def test_alignment_examples_from_traced_reference_solutions(pool):
    from coderl_jax.alignment.answers import parse_answer
    from coderl_jax.alignment.rewards import score_answer

    records, counts = sft.alignment_records(pool, fixture_problems(), k=2, inputs_per_problem=2)
    assert counts["harvested"] == len(records) == 8, counts
    by_source = {}
    for r in records:
        by_source.setdefault(r.source, []).append(r)
    assert sorted(r.stdin for r in by_source["train-sum_to_n"]) == ["10\n", "4\n"]
    outputs = {r.stdin: r.output for r in by_source["train-sum_to_n"]}
    assert outputs == {"4\n": "10\n", "10\n": "55\n"}
    for ex, r in zip(sft.align_examples(records), records):
        assert ex.kind == "align" and "Program:" in ex.prompt and r.program.strip() in ex.prompt
        assert score_answer(r, parse_answer(ex.response)).exact  # the response is the true answer


def test_alignment_examples_on_the_shortest_inputs(pool):
    records, _ = sft.alignment_records(pool, fixture_problems(), k=2, inputs_per_problem=1, record_input="shortest")
    stdin = {r.source: r.stdin for r in records}
    # "10 -3" is longer than "1 2", "-5" than "4", "banana" than "sky", "10" than "4"
    assert stdin == {"train-add": "1 2\n", "train-double": "4\n", "train-count_vowels": "sky\n",
                     "train-sum_to_n": "4\n"}
    both, _ = sft.alignment_records(pool, fixture_problems(), k=2, inputs_per_problem=2, record_input="shortest")
    assert sorted(r.stdin for r in both if r.source == "train-count_vowels") == ["banana\n", "sky\n"]


def test_alignment_examples_filtered_by_output_length(pool):
    records, counts = sft.alignment_records(pool, fixture_problems(), k=2, inputs_per_problem=2, max_output_chars=1)
    # of the 8 runs only those printing one character stay: sum_to_n(4) = 10 and (10) = 55 do not
    assert all(len(r.output.strip()) <= 1 for r in records) and counts["long_output"] == 8 - len(records) > 0
    assert "train-sum_to_n" not in {r.source for r in records}


def test_own_failed_programs_become_records(pool, monkeypatch):
    """`--align-own-samples`: each round samples every problem once with its own seed; the failed
    programs that run and print are harvested (the passing ones and duplicates are not)."""
    from coderl_jax.sft.scoring import failed_program_records

    problems = [p for p in fixture_problems() if p.id in ("train-double", "train-sum_to_n")]
    wrong = {"train-double": "n = int(input())\nr = 3 * n\nprint(r)\n",
             "train-sum_to_n": "n = int(input())\nt = n * n\nprint(t)\n"}
    calls = []

    def fake_texts(sampler, tokenizer, prompts, *, max_new_tokens, temperature=0.0, seed=0, batch=32):
        calls.append((temperature, seed))
        # round 0: both wrong; round 1: double right, sum_to_n wrong again (a duplicate run)
        second = len(calls) == 2
        return [sft.code_response(p.metadata["solution"] if second and p.id == "train-double" else wrong[p.id])
                for p in problems]

    monkeypatch.setattr("coderl_jax.sft.scoring.greedy_texts", fake_texts)
    records, info = failed_program_records(None, None, pool, problems, k=2, max_new_tokens=8, samples=2,
                                           temperature=1.0, seed=5, record_input="shortest")
    assert [c[0] for c in calls] == [1.0, 1.0] and calls[0][1] != calls[1][1]
    assert info["attempts"] == 4 and info["pass@1"] == 0.25
    assert info["harvest"]["considered"] == 3 and info["harvest"]["duplicate"] == 1
    assert sorted((r.source, r.stdin, r.output) for r in records) == [
        ("train-double", "4\n", "12\n"), ("train-sum_to_n", "4\n", "16\n")]


def test_alignment_examples_reason_step_by_step(pool):
    """The step style: the reasoning lines of the per-line trace, then the answer line; a record
    whose per-line run is not the record's falls back to the fixed sentence."""
    import dataclasses

    from coderl_jax.alignment.answers import parse_answer
    from coderl_jax.alignment.rewards import score_answer

    problems = [p for p in fixture_problems() if p.id == "train-sum_to_n"]
    records, _ = sft.alignment_records(pool, problems, k=2)
    broken = dataclasses.replace(records[0], output="0\n")  # a run the tracer does not reproduce
    texts, counts = sft.step_reasonings(pool, records + [broken])
    assert counts == {"steps": 1, "fixed": 1} and texts[1] is None
    good, fallback = sft.align_examples(records + [broken], texts)
    assert good.response.splitlines()[:-1] == ["solve.i = 4", "solve.total: 0; 1 -> 1; 2 -> 3; 3 -> 6; 4 -> 10"]
    assert score_answer(records[0], parse_answer(good.response)).exact
    assert fallback.response.startswith(sft.ALIGN_REASONING + "\n")
    assert [e.response for e in sft.align_examples(records)] == [sft.align_response(records[0])]


@pytest.mark.parametrize("style", ["steps", "fixed"])
def test_the_data_builder_emits_the_chosen_reasoning(pool, tmp_path, style):
    """`coderl sft` builds step-reasoning alignment rows unless --align-reasoning fixed."""
    import argparse

    from coderl_jax.sft.cli import add_arguments, prepare_data

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["--out", str(tmp_path / "m"), "--vocab-size", "300", "--max-len", "4096"] + (["--align-reasoning", style]
                                                                     if style == "fixed" else [])
    args = parser.parse_args(argv)
    assert args.align_reasoning == style
    data = prepare_data(args, pool, fixture_problems(), [], "fixture")
    responses = [data.tokenizer.decode(r[:-1]) for r, k in zip(data.encoded.response_ids, data.encoded.kinds)
                 if k == "align"]
    assert len(responses) == 4
    if style == "fixed":
        assert "align_reasoning" not in data.info  # sft.json's data as older warm starts recorded it
        assert all(r.startswith(sft.ALIGN_REASONING + "\n") for r in responses)
    else:
        assert data.info["align_reasoning"] == {"steps": 4, "fixed": 0}
        assert not any(sft.ALIGN_REASONING in r for r in responses)
        assert any("solve.total: 0; 1 -> 1; 2 -> 3; 3 -> 6; 4 -> 10" in r for r in responses)


def test_test_output_examples_answer_what_the_ablation_scores():
    """Statement + input -> the expected output: the prompt is the one the ablation's test-output
    accuracy sends, and the response's answer line is scored right by the same parser and comparison."""
    from coderl_jax.alignment.answers import parse_answer
    from coderl_jax.alignment.prompts import test_output_prompt
    from coderl_jax.alignment.reasoning import _statement
    from tracer.compare import lenient_equal

    problems = fixture_problems() + [Problem("calls", "Write f.", {"style": "call", "fn_name": "f",
                                                                   "inputs": [[1]], "outputs": [2]})]
    examples = sft.test_output_examples(problems, inputs_per_problem=2)
    assert len(examples) == 8  # 4 stdio problems x 2 inputs; the call-style problem has no stdin
    for ex in examples:
        p = next(q for q in problems if q.id == ex.source)
        i = next(i for i, x in enumerate(p.tests["inputs"]) if ex.prompt == test_output_prompt(_statement(p), x))
        assert ex.kind == "align" and "Program:" not in ex.prompt
        answer = parse_answer(ex.response)
        assert answer is not None and answer.variables == {}
        assert lenient_equal(answer.final_output, p.tests["outputs"][i].rstrip("\n"))
    assert len(sft.test_output_examples(problems, inputs_per_problem=1)) == 4


def test_tokenizer_round_trips_and_has_the_chat_template(tokenizer):
    for text in ["def f(x):\n    return x * 2\n", "héllo ✓ \t\n  spaces  ", "<|im_end|> after", ""]:
        assert tokenizer.decode(tokenizer.encode(text), skip_special_tokens=False) == text
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]) == [
        256, 257, 258, 259]
    assert tokenizer.encode("A")[0] == ord("A")  # ids 0..255 are the bytes
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    code = sft.code_examples(fixture_problems())[0].response
    assert len(tokenizer.encode(code)) < len(code.encode()) / 2  # merges learnt


def test_encode_drops_long_examples_and_ends_with_im_end(tokenizer):
    examples = sft.code_examples(fixture_problems())
    enc = sft.encode_examples(examples, tokenizer, max_len=10_000)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert all(r[-1] == end for r in enc.response_ids) and enc.dropped == 0
    assert tokenizer.decode(enc.prompt_ids[0]).endswith("<|im_start|>assistant\n")
    cut = int(np.sort(enc.lengths())[1])
    short = sft.encode_examples(examples, tokenizer, max_len=cut)
    assert short.dropped == len(examples) - 2 and len(short.prompt_ids) == 2


def test_pack_batch_rows_start_at_column_zero(tokenizer):
    batch = sft.pack_batch([[1, 2, 3], [4]], [[5, 6], [7, 8, 9]], length=8, pad_id=259)
    np.testing.assert_array_equal(batch["tokens"], [[1, 2, 3, 5, 6, 259, 259, 259], [4, 7, 8, 9, 259, 259, 259, 259]])
    # entry t is about token t+1: responses are trained at columns p-1 .. p+r-2
    np.testing.assert_array_equal(batch["loss_mask"], [[0, 0, 1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(batch["positions"][0, :5], [0, 1, 2, 3, 4])


def test_batch_mix_follows_the_code_fraction():
    enc = sft.Encoded([[1]] * 10, [[2]] * 10, ["code"] * 6 + ["align"] * 4)
    it = sft.batch_indices(enc, sft.SFTConfig(batch_size=8, code_fraction=0.75, seed=3))
    seen = set()
    for _ in range(6):
        idx = next(it)
        assert len(idx["code"]) == 6 and len(idx["align"]) == 2
        assert (idx["code"] < 6).all() and (idx["align"] >= 6).all()
        seen.update(idx["code"].tolist() + idx["align"].tolist())
    assert seen == set(range(10))  # every example is drawn (shuffled epochs per kind)
    only_code = sft.Encoded([[1]] * 3, [[2]] * 3, ["code"] * 3)
    idx = next(sft.batch_indices(only_code, sft.SFTConfig(batch_size=4, code_fraction=0.5)))
    assert list(idx) == ["code"] and len(idx["code"]) == 4


def test_length_buckets_batch_rows_of_similar_length():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 400, size=203)
    enc = sft.Encoded([[1] * int(n) for n in sizes], [[2]] * 203, ["align"] * 203)
    plain = sft.batch_indices(enc, sft.SFTConfig(batch_size=4, code_fraction=0.0, seed=1))
    bucketed = sft.batch_indices(enc, sft.SFTConfig(batch_size=4, code_fraction=0.0, seed=1, length_bucket=64))
    spread = {}
    for name, it in (("plain", plain), ("bucketed", bucketed)):
        batches = [next(it)["align"] for _ in range(50)]  # one epoch: 50 whole batches of 4 (3 rows wait)
        assert all(len(b) == 4 for b in batches)
        drawn = np.concatenate(batches)
        assert len(set(drawn.tolist())) == 200  # no row twice in an epoch
        spread[name] = np.mean([np.ptp(enc.lengths()[b]) for b in batches])
    assert spread["bucketed"] < 0.2 * spread["plain"], spread
    # the default order is the one the committed warm starts were trained on
    again = sft.batch_indices(enc, sft.SFTConfig(batch_size=4, code_fraction=0.0, seed=1))
    order = np.random.default_rng(1).permutation(203)[::-1]
    np.testing.assert_array_equal(next(again)["align"], order[:4])


def test_length_buckets_pad_less_and_leave_the_loss_alone(tokenizer):
    from coderl_jax.models.transformer import init_params

    cfg = tiny_cfg(tokenizer)
    problems = fixture_problems()
    examples = sft.code_examples(problems) + [sft.SFTExample("code", "pad", "x " * 150, "y")] * 2
    enc = sft.encode_examples(examples, tokenizer, max_len=512)
    runs = {}
    for bucket in (0, 16):
        conf = sft.SFTConfig(steps=6, batch_size=2, learning_rate=1e-2, warmup_steps=0, schedule="constant",
                             log_every=6, length_bucket=bucket, code_fraction=1.0)
        runs[bucket] = sft.train_sft(cfg, init_params(cfg, 0), enc, conf, pad_id=259, progress=False)[1][0]
    assert runs[16]["fill"] > 1.3 * runs[0]["fill"], runs
    assert runs[16]["row_lengths"]["code"] < runs[0]["row_lengths"]["code"]
    # a shorter row changes nothing but the padding: the same loss on the same rows
    params = init_params(cfg, 0)
    short = [i for i in range(len(enc.prompt_ids)) if enc.lengths()[i] < 200]
    losses = [float(sft.sft_loss(params, cfg, {"code": sft.pack_batch(
        [enc.prompt_ids[i] for i in short], [enc.response_ids[i] for i in short], length=n, pad_id=259)})[0])
        for n in (sft.row_length(enc, 512), 208)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def _numpy_nll(params, cfg, batch):
    """Full-vocabulary log-softmax in NumPy over the model's final hidden states."""
    from coderl_jax.models import transformer

    forward = jax.jit(lambda p, b: transformer.forward(p, cfg, b["tokens"], b["positions"], mask_bt=b["attn_mask"],
                                                       return_hidden=True).logits_btv)
    hidden = np.asarray(forward(params, batch), np.float64)
    head = np.asarray(transformer.head_weight(params, cfg), np.float64)
    logits = hidden @ head
    logits -= logits.max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = np.concatenate([batch["tokens"][:, 1:], np.zeros_like(batch["tokens"][:, :1])], axis=1)
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    mask = batch["loss_mask"].astype(np.float64)
    return -(picked * mask).sum() / mask.sum()


def _numpy_parts_nll(params, cfg, parts):
    sums = [_numpy_nll(params, cfg, b) * b["loss_mask"].sum() for b in parts.values()]
    return sum(sums) / sum(b["loss_mask"].sum() for b in parts.values())


def test_loss_matches_numpy_masked_nll(tokenizer, pool):
    from coderl_jax.models.transformer import init_params

    cfg = tiny_cfg(tokenizer)
    params = init_params(cfg, 0)
    problems = fixture_problems()
    examples = sft.code_examples(problems) + sft.align_examples(sft.alignment_records(pool, problems[:2])[0])
    enc = sft.encode_examples(examples, tokenizer, max_len=1024)
    parts = {kind: sft.pack_batch([enc.prompt_ids[i] for i in enc.indices(kind)],
                                  [enc.response_ids[i] for i in enc.indices(kind)],
                                  length=sft.row_length(enc, 1024, kind), pad_id=259) for kind in sft.KINDS}
    assert parts["align"]["tokens"].shape[1] > parts["code"]["tokens"].shape[1]  # own row length per kind
    loss_fn = jax.jit(lambda p, b: sft.sft_loss(p, cfg, b))
    loss, aux = loss_fn(params, parts)
    assert int(aux["tokens/code"]) == sum(len(enc.response_ids[i]) for i in enc.indices("code"))
    np.testing.assert_allclose(float(loss), _numpy_parts_nll(params, cfg, parts), rtol=1e-5)
    np.testing.assert_allclose(float(aux["loss/code"]), _numpy_nll(params, cfg, parts["code"]), rtol=1e-5)
    one, _ = loss_fn(params, {"code": parts["code"]})
    np.testing.assert_allclose(float(one), _numpy_nll(params, cfg, parts["code"]), rtol=1e-5)


def test_a_few_steps_reduce_the_loss(tokenizer):
    from coderl_jax.models.transformer import init_params

    cfg = tiny_cfg(tokenizer)
    enc = sft.encode_examples(sft.code_examples(fixture_problems()), tokenizer, max_len=512)
    conf = sft.SFTConfig(steps=9, batch_size=4, learning_rate=1e-2, warmup_steps=0, schedule="constant",
                         log_every=3)
    params, history = sft.train_sft(cfg, init_params(cfg, 0), enc, conf, pad_id=259, progress=False)
    assert [h["step"] for h in history] == [3, 6, 9]
    assert history[-1]["loss"] < 0.8 * history[0]["loss"], history
    parts = {"code": sft.pack_batch(enc.prompt_ids, enc.response_ids, length=sft.row_length(enc, 512),
                                    pad_id=259)}
    before = float(sft.sft_loss(init_params(cfg, 0), cfg, parts)[0])
    assert float(sft.sft_loss(params, cfg, parts)[0]) < 0.7 * before


def test_cli_trains_saves_and_loads(tmp_path, capsys):
    from coderl_jax.cli import main
    from coderl_jax.models.hf_io import load_hf, load_tokenizer

    train = write_jsonl(tmp_path / "train.jsonl", fixture_problems())
    heldout = write_jsonl(tmp_path / "heldout.jsonl", fixture_problems("heldout")[:2])
    out = tmp_path / "model"
    rc = main(["sft", "--out", str(out), "--train", str(train), "--heldout", str(heldout), "--steps", "3",
               "--batch", "4", "--vocab-size", "300", "--hidden", "32", "--layers", "1", "--heads", "2",
               "--kv-heads", "1", "--intermediate", "64", "--log-every", "1", "--eval-train", "2",
               "--eval-align", "2", "--eval-every", "3", "--max-new-tokens", "8", "--quiet", "--workers", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "held-out greedy pass@1: 0.0% over 2 problems" in printed
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "sft.json"} <= names
    cfg, params = load_hf(out)
    assert cfg.family == "qwen2" and cfg.num_layers == 1 and cfg.tie_word_embeddings
    assert json.loads((out / "config.json").read_text())["torch_dtype" if "torch_dtype" in json.loads(
        (out / "config.json").read_text()) else "dtype"] == "bfloat16"
    tok = load_tokenizer(out)
    assert cfg.vocab_size == len(tok) and tok.decode(tok.encode("x = [1, 2]\n")) == "x = [1, 2]\n"
    assert set(cfg.eos_token_ids) == {tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id}
    info = json.loads((out / "sft.json").read_text())
    assert info["data"]["code_examples"] == 4 and info["data"]["align_examples"] == 4
    assert len(info["history"]) == 3 and info["history"][-1]["eval/heldout_pass@1"] == 0.0
    # 8 new tokens cannot hold an answer line: nothing parses, during training and after
    assert info["history"][-1]["eval/heldout_align_parsed"] == info["eval"]["heldout_alignment"]["parsed"] == 0.0
    assert info["history"][-1]["eval/heldout_align_items"] == 0.0
    assert info["eval"]["heldout"]["problems"] == 2 and info["eval"]["heldout_alignment"]["records"] == 2


def test_cli_continues_from_an_earlier_warm_start(tmp_path):
    from coderl_jax.cli import main
    from coderl_jax.models.hf_io import load_hf

    train = write_jsonl(tmp_path / "train.jsonl", fixture_problems())
    common = ["--train", str(train), "--batch", "4", "--vocab-size", "300", "--hidden", "32", "--layers", "1",
              "--heads", "2", "--kv-heads", "1", "--intermediate", "64", "--log-every", "1", "--lr", "1e-2",
              "--warmup", "0", "--schedule", "constant", "--no-eval", "--quiet", "--workers", "1",
              "--save-dtype", "float32", "--code-fraction", "1"]
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["sft", "--out", str(first), "--steps", "8", *common]) == 0
    # a different size and vocabulary on the command line: --init's model and tokenizer win
    assert main(["sft", "--out", str(second), "--init", str(first), "--steps", "1", *common, "--hidden", "64",
                 "--vocab-size", "400"]) == 0
    assert (second / "tokenizer.json").read_bytes() == (first / "tokenizer.json").read_bytes()
    cfg1, _ = load_hf(first)
    cfg2, _ = load_hf(second)
    assert cfg2 == cfg1
    h1 = json.loads((first / "sft.json").read_text())["history"]
    h2 = json.loads((second / "sft.json").read_text())["history"]
    assert h2[0]["loss"] < 0.8 * h1[0]["loss"], (h1, h2)  # it starts where the first run ended
    info2 = json.loads((second / "sft.json").read_text())
    assert info2["args"]["init"] == str(first)
    # the lineage: what made the starting model, nested one level per --init
    info1 = json.loads((first / "sft.json").read_text())
    assert {k: info2["init"][k] for k in ("args", "sft", "data")} == {k: info1[k] for k in ("args", "sft", "data")}
    assert "init" not in info2["init"] and "history" not in info2["init"]
    third = tmp_path / "third"
    assert main(["sft", "--out", str(third), "--init", str(second), "--steps", "1", *common]) == 0
    lineage = json.loads((third / "sft.json").read_text())["init"]
    assert lineage["args"]["out"] == str(second) and lineage["init"]["args"]["out"] == str(first)
    # the --init policy's own programs: 4 problems x 2 samples, none passes in 8 tokens, none has code
    own = tmp_path / "own"
    assert main(["sft", "--out", str(own), "--init", str(first), "--steps", "1", *common, "--code-fraction", "0.5",
                 "--align-own-samples", "2", "--max-new-tokens", "8"]) == 0
    data = json.loads((own / "sft.json").read_text())["data"]
    assert data["own_programs"]["attempts"] == 8 and data["own_programs"]["pass@1"] == 0.0
    assert data["own_programs"]["harvest"]["considered"] == data["own_programs"]["harvest"]["no_code"] == 8


@pytest.mark.parametrize("extra, message", [
    (["--steps", "0"], "--steps=0 must be >= 1"),
    (["--code-fraction", "1.5"], "--code-fraction=1.5 must be in [0, 1]"),
    (["--length-bucket", "-8"], "--length-bucket=-8 must be >= 0"),
    (["--init", "/nonexistent/model"], "--init /nonexistent/model: not a model directory"),
    (["--hidden", "30", "--heads", "4"], "--hidden=30 must be divisible by --heads=4"),
    (["--vocab-size", "100"], "--vocab-size=100 must be 0 (byte tokenizer) or >= 260"),
    (["--test-output-inputs", "-1"], "--test-output-inputs=-1 must be >= 0"),
    (["--reasoning-max-lines", "0"], "--reasoning-max-lines=0 must be >= 1"),
    (["--reasoning-max-chars", "10"], "--reasoning-max-chars=10 must be >= 40"),
    (["--train", "/nonexistent/train.jsonl"], "--train /nonexistent/train.jsonl: no such file"),
    (["--rl-reserve", "1"], "--rl-reserve=1.0 must be in [0, 1)"),
    (["--align-own-samples", "2"], "--align-own-samples needs --init"),
    (["--rl-reserve", "0.25", "--train", "t.jsonl"], "--rl-reserve divides the generated task suite"),
])
def test_cli_argument_errors_are_clear(tmp_path, capsys, extra, message):
    from coderl_jax.cli import main

    assert main(["sft", "--out", str(tmp_path / "m"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_cli_refuses_a_non_empty_out_dir(tmp_path, capsys):
    from coderl_jax.cli import main

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "x").write_text("x")
    assert main(["sft", "--out", str(tmp_path / "m")]) == 2
    assert "exists and is not empty (pass --overwrite" in capsys.readouterr().err


def test_the_generated_suite_gives_code_examples():
    from coderl_jax.data.suite import generate_suite
    from coderl_jax.data.responses import extract_code
    from coderl_jax.sft.cli import split_suite

    train, heldout = split_suite(generate_suite(0, n_train=5, n_heldout=3))
    assert len(train) == 5 and len(heldout) == 3
    examples = sft.code_examples(train)
    assert len(examples) == 5 and all(extract_code(e.response) for e in examples)


def test_rl_reserve_keeps_the_reserved_compositions_out_of_the_warm_start():
    from argparse import Namespace

    from coderl_jax.data.suite import generate_suite, reserve_for_rl
    from coderl_jax.sft.cli import load_problems

    args = Namespace(train=None, heldout=None, suite_seed=0, n_train=300, n_heldout=10, rl_reserve=0.25)
    train, heldout, source = load_problems(args)
    sft_part, rl_part = reserve_for_rl(generate_suite(0, n_train=300, n_heldout=10)["train"], 0, 0.25)
    assert [p.id for p in train] == [p.id for p in sft_part] and rl_part and len(heldout) == 10
    assert source["rl_reserve"] == 0.25 and source["rl_reserved_problems"] == len(rl_part)


def test_saved_bpe_tokenizer_loads_as_it_was_trained():
    """The committed warm start: its config.json says qwen2, so transformers' AutoTokenizer builds a
    Qwen2Tokenizer whose own pre-tokeniser splits digits and whitespace differently from the GPT-2
    rules the BPE was trained with (" 3" -> " ", "3"); the model then sees prompts it was never
    trained on. load_tokenizer, which every loader of the project uses, encodes as tokenizer.json."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from coderl_jax.models.hf_io import load_tokenizer

    model = Path(__file__).resolve().parents[2] / "coderl_jax" / "configs" / "models" / "coderl-tiny"
    text = "multiply each number by 3, then add 7\n    if x > -4:\n        return [x * 3 for x in nums]\n"
    expected = Tokenizer.from_file(str(model / "tokenizer.json")).encode(text).ids
    ours = load_tokenizer(model)
    assert ours.encode(text, add_special_tokens=False) == expected
    assert AutoTokenizer.from_pretrained(str(model)).encode(text, add_special_tokens=False) != expected
    assert ours.decode(expected) == text
    assert ours.eos_token == "<|endoftext|>" and ours.pad_token == "<|pad|>"
    assert ours.convert_tokens_to_ids("<|im_end|>") == 258
    chat = ours.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
