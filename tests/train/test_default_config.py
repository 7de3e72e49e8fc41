"""The embedded default's pieces load: the preset validates, the committed policy and its
tokenizer load, and the suite files its data setup writes hold the problems it promises."""

from pathlib import Path


def test_default_config_and_committed_policy_load(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from coderl_jax.data.readers import read_problems
    from coderl_jax.models.hf_io import load_hf
    from coderl_jax.train.config_util import DEFAULT_CONFIG, load_config
    from coderl_jax.train.data_setup import prepare_data

    monkeypatch.setenv("CODERL_CACHE", str(tmp_path))
    assert DEFAULT_CONFIG == "default_cpu"
    cfg = prepare_data(load_config(DEFAULT_CONFIG).validate())
    assert cfg.alignment.mode == "coderl" and Path(cfg.data.train_path).is_relative_to(tmp_path)
    model_cfg, params = load_hf(cfg.model)
    n_params = sum(x.size for x in __import__("jax").tree.leaves(params))
    assert 1e6 < n_params < 1e7 and model_cfg.vocab_size <= 2048
    tok = AutoTokenizer.from_pretrained(cfg.model)
    text = "def solve(nums):\n    total = 0\n"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    train, _ = read_problems(cfg.data.train_path)
    heldout, _ = read_problems(cfg.data.eval_path)
    assert len(train) == 3000 and len(heldout) == 300
    assert not {p.metadata["signature"] + p.prompt for p in train} & {p.metadata["signature"] + p.prompt for p in heldout}


def test_grpo_config_trains_on_compositions_its_warm_start_never_saw(tmp_path, monkeypatch):
    import json

    from coderl_jax.data.readers import read_problems
    from coderl_jax.data.suite import bigrams
    from coderl_jax.models.hf_io import load_hf
    from coderl_jax.train.config_util import load_config
    from coderl_jax.train.data_setup import prepare_data

    monkeypatch.setenv("CODERL_CACHE", str(tmp_path))
    cfg = prepare_data(load_config("grpo_cpu").validate())
    assert Path(cfg.data.train_path).is_relative_to(tmp_path)
    assert cfg.alignment.mode == "off" and cfg.rollout.dynamic_sampling and cfg.model.endswith("coderl-tiny-rl25")
    rl, _ = read_problems(cfg.data.train_path)
    heldout, _ = read_problems(cfg.data.eval_path)
    sft, _ = read_problems(Path(cfg.data.train_path).with_name("sft.jsonl"))
    assert len(rl) + len(sft) == 3000 and len(heldout) == 300
    steps = [{tuple(p.metadata["steps"]) for p in ps} for ps in (sft, rl, heldout)]
    seen = set().union(*map(bigrams, steps[0]))
    assert all(bigrams(c) - seen for c in steps[1] | steps[2])  # every RL or held-out problem has an unseen bigram
    assert not steps[1] & steps[2]
    # the warm start was fine-tuned on exactly the sft part
    info = json.loads((Path(cfg.model) / "sft.json").read_text())
    assert info["data"]["source"] == {"suite_seed": 0, "rl_reserve": 0.25, "rl_reserved_problems": len(rl)}
    assert info["data"]["train_problems"] == len(sft)
    model_cfg, _ = load_hf(cfg.model)
    assert model_cfg.vocab_size <= 2048



def test_states_config_probes_100_short_output_programs(tmp_path, monkeypatch, pool):
    """states_cpu: its warm start was trained on records filtered as its RL harvest filters them,
    and its probe reaches 100 records of held-out programs whose outputs fit the filter."""
    import json

    from coderl_jax.alignment.probe import build_probe_records, read_probe_file
    from coderl_jax.models.hf_io import load_hf
    from coderl_jax.train.config_util import load_config
    from coderl_jax.train.data_setup import prepare_data

    monkeypatch.setenv("CODERL_CACHE", str(tmp_path))
    cfg = prepare_data(load_config("states_cpu").validate())
    a = cfg.alignment
    assert cfg.model.endswith("coderl-tiny-states") and a.mode == "coderl" and a.record_input == "shortest"
    args = json.loads((Path(cfg.model) / "sft.json").read_text())["args"]
    assert (args["align_max_value_chars"], args["align_max_output_chars"], args["align_input"]) == (
        a.max_value_chars, a.max_output_chars, a.record_input)
    rows = read_probe_file(a.probe_path)
    assert len(rows) == 300
    records = build_probe_records(rows, pool, k=a.k, targets=a.targets, max_value_chars=a.max_value_chars,
                                  max_output_chars=a.max_output_chars, limit=a.probe_max)
    assert len(records) == a.probe_max == 100
    assert all(len(r.output.strip()) <= 8 for r in records)
    assert all(len(json.dumps(t["json"])) <= 8 for r in records for t in r.targets)
    model_cfg, _ = load_hf(cfg.model)
    assert 1e6 < model_cfg.num_params() < 1e7
