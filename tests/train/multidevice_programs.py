"""The programs `coderl train` ran are the programs `coderl plan` builds: run by
test_programs_match_plan.py in a subprocess with 8 simulated CPU devices (XLA_FLAGS must be set
before JAX starts). Not collected by the normal test run (its name does not start with test_).

Two steps of a small config on a (data 2, fsdp 2, tensor 2) mesh, with a KL term (reference
scoring), refilled decode rows, declared packed lengths and prompt buckets, the alignment task and
a held-out evaluation, record every program call the loop makes
(name, jitted function, abstract arguments); for each distinct call, `StepPrograms` (what `coderl
plan` compiles) builds the program of the same name for the same shapes, and the two lower to the
same StableHLO text on the same devices.
"""

from __future__ import annotations

import collections
import dataclasses

import jax
import pytest

from coderl_jax.configs import DATA_DIR
from coderl_jax.plan.planner import MODELS_DIR as MODELS
from coderl_jax.train import programs
from coderl_jax.train.config_util import apply_overrides, load_config
from coderl_jax.train.loop import load_policy, make_job_mesh, train


def setup_module():
    assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"


def signature(args, kwargs) -> str:
    leaves = jax.tree.leaves((args, kwargs), is_leaf=lambda x: isinstance(x, jax.ShapeDtypeStruct))
    return repr([(x.shape, str(x.dtype), str(x.sharding)) if isinstance(x, jax.ShapeDtypeStruct) else x
                 for x in leaves])


def planned(progs: programs.StepPrograms, name: str, args, kwargs):
    """The plan's call for the shapes the loop used."""
    if name == "update":
        return progs.update_call([part["tokens"].shape for part in args[1]])
    if name == "scoring":  # old log-probs, or the reference's (its weights in `loss.ref_dtype`)
        reference = jax.tree.leaves(args[0])[0].dtype != jax.tree.leaves(progs.state.params)[0].dtype
        return progs.scoring_call(*args[1]["tokens"].shape, reference=reference)
    if name == "reshard":
        return progs.reshard_call()
    if name == "rollout":  # the training rollout's decode, or the evaluation's (greedy)
        rows, prompt_len = args[2].shape
        calls = [progs.rollout_call(rows, prompt_len), progs.eval_call(rows, prompt_len)]
        same = [call for call in calls if call[2]["spec"] == kwargs["spec"]]
        assert same, f"a decode the plan does not know: {kwargs['spec']}"
        return same[0]
    raise AssertionError(f"a program the plan does not know: {name}")


def test_loop_programs_lower_like_the_plan(tmp_path):
    cfg = apply_overrides(load_config("tiny_cpu"), [
        f"out_dir={tmp_path / 'run'}", f"model={MODELS / 'coderl-tiny'}", "steps=2", "checkpoint_every=2", "progress=false",
        "tensorboard=false", "eval.every=2", "eval.at_start=false", "eval.max_problems=4",
        f"data.train_path={DATA_DIR / 'tiny_problems.jsonl'}", f"data.eval_path={DATA_DIR / 'tiny_problems.jsonl'}",
        "mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2", "rollout.prompts_per_step=4", "rollout.group_size=4",
        "rollout.max_new_tokens=32", "rollout.decode_slots=8", "rollout.decode_chunk=8", "rollout.decode_unroll=2",
        "alignment.mode=coderl", "tracer.workers=1", "loss.kl_coef=0.01", "packed_lengths=160,224",
        "rollout.prompt_buckets=192",
    ])
    with programs.recording() as calls:
        train(cfg)
    seen = collections.OrderedDict()
    for name, fn, args, kwargs in calls:
        seen.setdefault((name, signature(args, kwargs)), (name, fn, args, kwargs))
    names = collections.Counter(name for name, *_ in seen.values())
    assert {"update", "scoring", "reshard", "rollout"} <= set(names), names
    print("distinct program calls:", dict(names))

    mesh = make_job_mesh(cfg)
    model_cfg, _, tokenizer, _ = load_policy(cfg, mesh)
    progs = programs.StepPrograms(cfg, model_cfg, mesh, tokenizer=tokenizer)
    for name, fn, args, kwargs in seen.values():
        plan_fn, plan_args, plan_kwargs = planned(progs, name, args, kwargs)
        assert plan_kwargs == kwargs, (name, plan_kwargs, kwargs)  # the same decode settings, refill rows
        ran = fn.lower(*args, **kwargs).as_text()
        shapes = [x.shape for x in jax.tree.leaves(args[1:]) if isinstance(x, jax.ShapeDtypeStruct)]
        assert plan_fn.lower(*plan_args, **plan_kwargs).as_text() == ran, f"{name} {shapes}: the plan's differs"
        if name == "update":  # one array of code and alignment rows, at a declared length
            assert len(args[1]) == 1 and args[1][0]["tokens"].shape[1] in cfg.packed_lengths
        if name == "scoring":
            assert args[1]["tokens"].shape[1] in cfg.packed_lengths
        if name == "rollout":  # a prompt bucket the plan lists
            assert args[2].shape[1] in progs.sampler.prompt_lengths(cfg.rollout.max_new_tokens,
                                                                    upto=cfg.data.max_prompt_tokens)
    rollouts = [kw for (name, _, _, kw) in seen.values() if name == "rollout"]
    assert any("slots" in kw for kw in rollouts)  # the refilled decode ran and was compared
    assert any(kw["spec"].greedy for kw in rollouts)  # and the evaluation's
