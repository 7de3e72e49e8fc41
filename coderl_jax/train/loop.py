"""The GRPO training loop: sample -> reward -> advantages -> update -> evaluate -> checkpoint.

    problems (grain) --> prompts --> sampler (G per prompt) --> tracer rewards --> advantages
        --> trainer's old / reference log-probs --> `updates_per_step` jitted train steps
        --> metrics.jsonl / TensorBoard --> orbax checkpoint (params, optimizer, step, rng, data)

Everything random is derived from (config.seed, step), and the data iterator's position is
checkpointed, so a killed run resumed from its last checkpoint produces the same metrics as one
that was never interrupted (timings aside).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from coderl_jax.rl import compute_advantages, zero_variance_fraction
from coderl_jax.rl.train_step import (
    BATCH_FIELDS, init_train_state, learning_rate_schedule, make_logprob_fn, make_optimizer, make_train_step,
)
from coderl_jax.train.config import TrainConfig
from coderl_jax.train.rewards import get_reward
from coderl_jax.train.rollout import pack_rollouts

log = logging.getLogger("coderl_jax.train")


class TrainingStopped(RuntimeError):
    """Raised when repeated non-finite steps stop the run (the last good checkpoint is intact)."""


# ------------------------------------------------------------------------------------------------
# set-up helpers


def load_policy(cfg: TrainConfig):
    """(model config, params, tokenizer) from an HF directory, or the built-in tiny random model."""
    from transformers import AutoTokenizer

    from coderl_jax.models.hf_io import load_hf
    from coderl_jax.models.tiny import default_model_dir

    path = default_model_dir() if cfg.model == "tiny-random" else Path(cfg.model)
    model_cfg, params = load_hf(path, param_dtype=cfg.param_dtype, dtype=cfg.dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model_cfg, params, tokenizer, path


def make_tracer(cfg: TrainConfig):
    if cfg.tracer.url:
        from tracer import TracerClient

        return TracerClient(cfg.tracer.url)
    from tracer import TracerPool

    return TracerPool(workers=cfg.tracer.workers or None)


def encode_prompts(problems, tokenizer, cfg: TrainConfig) -> list[list[int]]:
    from coderl_jax.data.chat import render_prompt

    ids = []
    for p in problems:
        text = render_prompt(p, tokenizer, system=cfg.data.system_prompt, raw=cfg.data.raw_prompts)
        ids.append(list(tokenizer.encode(text, add_special_tokens=False))[-cfg.data.max_prompt_tokens:])
    return ids


def _step_seed(seed: int, step: int, salt: int = 0) -> int:
    return int(np.random.SeedSequence([seed, step, salt]).generate_state(1)[0] % (2**31 - 1))


# ------------------------------------------------------------------------------------------------
# one rollout round


def rollout(sampler, problems, prompt_ids, cfg: TrainConfig, reward_fn, tracer, seed: int):
    from coderl_jax.sampling.sampler import SamplingParams

    r = cfg.rollout
    sp = SamplingParams(n=r.group_size, max_new_tokens=r.max_new_tokens, temperature=r.temperature, top_p=r.top_p,
                        top_k=r.top_k, stop=tuple(r.stop), seed=seed)
    t0 = time.perf_counter()
    groups = sampler.generate(prompt_ids, sp)
    t_sample = time.perf_counter() - t0
    completions = [c for g in groups for c in g]
    row_problems = [p for p in problems for _ in range(r.group_size)]
    t0 = time.perf_counter()
    rewards, info = reward_fn(tracer, row_problems, [c.text for c in completions], timeout_s=cfg.tracer.timeout_s)
    t_reward = time.perf_counter() - t0
    return completions, np.asarray(rewards, np.float32), info, t_sample, t_reward


class Round(NamedTuple):
    """One rollout round: P problems, their prompt ids, P*G completions and rewards (grouped)."""

    problems: list
    prompt_ids: list
    completions: list
    rewards: np.ndarray


def fill_with_signal(first: Round, draw_more, *, prompts_needed: int, group_size: int,
                     max_extra_rounds: int) -> tuple[Round, int]:
    """DAPO dynamic sampling: drop groups whose rewards are all equal and draw more rounds
    (`draw_more(i)` for i = 1, 2, ...) until `prompts_needed` groups carry signal, at most
    `max_extra_rounds` extra rounds. When the bound is hit first, the original round is returned
    unchanged (training on it is better than stalling). Returns (round, extra rounds used)."""
    g = group_size
    kept = Round([], [], [], [])
    rewards_kept: list[float] = []
    current, rounds = first, 0
    while True:
        signal_g = np.asarray(current.rewards, np.float32).reshape(-1, g).std(axis=1) > 0
        for i in np.flatnonzero(signal_g):
            kept.problems.append(current.problems[i])
            kept.prompt_ids.append(current.prompt_ids[i])
            kept.completions.extend(current.completions[i * g:(i + 1) * g])
            rewards_kept.extend(np.asarray(current.rewards)[i * g:(i + 1) * g].tolist())
        if len(kept.problems) >= prompts_needed:
            n = prompts_needed
            return Round(kept.problems[:n], kept.prompt_ids[:n], kept.completions[:n * g],
                         np.asarray(rewards_kept[:n * g], np.float32)), rounds
        if rounds >= max_extra_rounds:
            return first, rounds
        rounds += 1
        current = draw_more(rounds)


# ------------------------------------------------------------------------------------------------
# the loop


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) training; returns the last step's metrics."""
    from coderl_jax.data.pipeline import make_problem_iterator
    from coderl_jax.sampling.sampler import Sampler
    from coderl_jax.train.checkpointing import Checkpointer
    from coderl_jax.train.metrics import MetricsWriter

    cfg.validate()
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_cfg, params, tokenizer, model_path = load_policy(cfg)
    (out_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")

    r = cfg.rollout
    rows = r.prompts_per_step * r.group_size
    length = cfg.data.max_prompt_tokens + r.max_new_tokens
    optim_cfg = dataclasses.replace(cfg.optim, total_steps=max(cfg.steps * cfg.updates_per_step, 1))
    optimizer = make_optimizer(optim_cfg)
    lr_schedule = learning_rate_schedule(optim_cfg)  # the optimizer's own schedule, for logging
    step_fn = make_train_step(model_cfg, cfg.loss, optimizer, num_micro=cfg.micro_batches)
    logprob_fn = make_logprob_fn(model_cfg, temperature=cfg.loss.temperature,
                                 chunk_rows=cfg.loss.logprob_chunk_rows)
    ref_params = jax.tree.map(jnp.copy, params) if cfg.loss.kl_coef else None
    state = init_train_state(params, optimizer)
    data_kwargs = dict(split="train", seed=cfg.seed, shuffle=cfg.data.shuffle, batch_size=r.prompts_per_step,
                       drop_remainder=True, data_dir=cfg.data.data_dir or None, tokenizer=tokenizer,
                       max_prompt_tokens=cfg.data.max_prompt_tokens, system=cfg.data.system_prompt,
                       raw_prompts=cfg.data.raw_prompts)
    data_iter = make_problem_iterator(cfg.data.train_path, **data_kwargs)

    ckpt = Checkpointer(out_dir / "checkpoints", keep=cfg.keep_checkpoints, every=cfg.checkpoint_every,
                        async_save=cfg.async_checkpointing)
    ckpt.write_model_config(model_cfg.to_hf())
    start_step = 0
    if ckpt.latest_step() is not None:
        restored = ckpt.restore(params_like=state.params, opt_state_like=state.opt_state)
        start_step = restored["step"]
        state = state._replace(params=restored["params"], opt_state=restored["opt_state"],
                               step=jnp.asarray(restored["extra"].get("updates", 0), jnp.int32))
        data_iter.set_state(restored["data_state"])
        log.info("resumed from step %d", start_step)
    metrics_writer = MetricsWriter(out_dir, resume_step=start_step, tensorboard=cfg.tensorboard,
                                   wandb_project=cfg.wandb_project or None, run_config=dataclasses.asdict(cfg))

    live = {"state": state}
    sampler = Sampler(model_cfg, lambda: live["state"].params, tokenizer, max_cache_len=length,
                      cache_dtype=r.cache_dtype)
    reward_fn = get_reward(cfg.tracer.reward)
    tracer = make_tracer(cfg)
    eval_problems = _eval_problems(cfg, tokenizer) if cfg.eval.every and cfg.data.eval_path else []

    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start_step, desc="coderl train", dynamic_ncols=True)
    last, skipped_in_a_row = {}, 0
    try:
        for step in range(start_step + 1, cfg.steps + 1):
            t_step = time.perf_counter()
            m = _train_one_step(step, cfg, live, data_iter, tokenizer, sampler, reward_fn, tracer, step_fn,
                                logprob_fn, ref_params, length, rows)
            m["actor/lr"] = float(lr_schedule(int(live["state"].step)))
            skipped_in_a_row = skipped_in_a_row + 1 if m["skipped"] else 0
            if skipped_in_a_row >= cfg.max_skipped_steps:
                raise TrainingStopped(f"step {step}: {skipped_in_a_row} consecutive non-finite updates; "
                                      f"the last good checkpoint is step {ckpt.latest_step()}")
            if eval_problems and (step % cfg.eval.every == 0 or step == cfg.steps):
                t0 = time.perf_counter()
                m.update(evaluate(sampler, eval_problems, tokenizer, cfg, reward_fn, tracer, step))
                m["time/eval_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            ckpt.save(step, params=live["state"].params, opt_state=live["state"].opt_state,
                      rng=jax.random.key(cfg.seed), data_state=data_iter.get_state(),
                      extra={"updates": int(live["state"].step)}, force=step == cfg.steps)
            m["time/checkpoint_s"] = time.perf_counter() - t0
            m["time/step_s"] = time.perf_counter() - t_step
            last = metrics_writer.write(step, m)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(reward=f"{m['reward/mean']:.3f}", loss=f"{m['actor/loss']:.4f}",
                                kl=f"{m['actor/kl_loss']:.4f}", len=f"{m['response/length_mean']:.0f}")
        ckpt.wait()
    finally:
        if bar is not None:
            bar.close()
        ckpt.close()
        metrics_writer.close()
        if hasattr(tracer, "close"):
            tracer.close()
    return last


def _train_one_step(step, cfg, live, data_iter, tokenizer, sampler, reward_fn, tracer, step_fn, logprob_fn,
                    ref_params, length, rows) -> dict:
    r = cfg.rollout
    g = r.group_size
    problems = next(data_iter)
    prompt_ids = encode_prompts(problems, tokenizer, cfg)
    completions, rewards, info, t_sample, t_reward = rollout(
        sampler, problems, prompt_ids, cfg, reward_fn, tracer, _step_seed(cfg.seed, step))
    zero_var = float(zero_variance_fraction(rewards, g))
    rounds = 0
    if r.dynamic_sampling:  # DAPO: keep only groups with signal, sample more problems to refill
        timings = [t_sample, t_reward]

        def draw_more(round_index):
            more = next(data_iter)
            more_ids = encode_prompts(more, tokenizer, cfg)
            c2, r2, _, ts, tr = rollout(sampler, more, more_ids, cfg, reward_fn, tracer,
                                        _step_seed(cfg.seed, step, round_index))
            timings[0] += ts
            timings[1] += tr
            return Round(list(more), more_ids, c2, r2)

        chosen, rounds = fill_with_signal(Round(list(problems), prompt_ids, completions, rewards), draw_more,
                                          prompts_needed=r.prompts_per_step, group_size=g,
                                          max_extra_rounds=r.max_extra_rounds)
        problems, prompt_ids, completions, rewards = chosen
        t_sample, t_reward = timings
    advantages = np.asarray(compute_advantages(rewards, g, cfg.advantage), np.float32)
    row_prompts = [p for p in prompt_ids for _ in range(g)]
    batch = pack_rollouts(row_prompts, [c.token_ids for c in completions], length=length,
                          pad_id=sampler.pad_id(), sampler_logprobs=[c.logprobs for c in completions],
                          advantages=advantages)
    t0 = time.perf_counter()
    dev = {k: jnp.asarray(batch[k]) for k in BATCH_FIELDS}
    old = logprob_fn(live["state"].params, dev)
    dev["old_logprobs"] = old
    if ref_params is not None:
        dev["ref_logprobs"] = logprob_fn(ref_params, dev)
    mask = batch["loss_mask"]
    sampler_diff = float(np.abs(np.asarray(old) - batch["sampler_logprobs"])[mask].mean()) if mask.any() else 0.0
    per_update = rows // cfg.updates_per_step
    order = np.random.RandomState(_step_seed(cfg.seed, step, 99)).permutation(rows)
    update_metrics = []
    for u in range(cfg.updates_per_step):
        idx = order[u * per_update:(u + 1) * per_update]
        mini = {k: v[idx] for k, v in dev.items()}
        new_state, um = step_fn(live["state"], mini, jax.random.key(step))
        live["state"] = new_state
        update_metrics.append(jax.device_get(um))
    t_update = time.perf_counter() - t0

    lengths = np.array([len(c.token_ids) for c in completions])
    statuses = info.get("status", [])
    m = {
        "reward/mean": float(rewards.mean()), "reward/std": float(rewards.std()),
        "reward/pass_rate": float(np.mean(rewards >= 1.0)),
        "reward/zero_variance_frac": zero_var, "reward/dynamic_rounds": rounds,
        "advantage/mean": float(advantages.mean()), "advantage/std": float(advantages.std()),
        "advantage/max": float(advantages.max()), "advantage/min": float(advantages.min()),
        "response/length_mean": float(lengths.mean()), "response/length_max": int(lengths.max()),
        "response/clip_ratio": float(np.mean([c.finish_reason == "length" for c in completions])),
        "rollout/sampler_trainer_logprob_diff": sampler_diff,
        "time/rollout_s": t_sample, "time/reward_s": t_reward, "time/update_s": t_update,
        "perf/rollout_tokens_per_s": float(lengths.sum() / max(t_sample, 1e-9)),
        "perf/update_tokens_per_s": float(batch["attn_mask"].sum() * 1.0 / max(t_update, 1e-9)),
    }
    for status in sorted(set(statuses)):
        m[f"reward/status_{status}"] = float(np.mean([s == status for s in statuses]))
    for key in update_metrics[0]:
        values = [float(um[key]) for um in update_metrics]
        name = {"loss": "actor/loss", "pg_loss": "actor/pg_loss", "kl_loss": "actor/kl_loss",
                "entropy_loss": "actor/entropy_loss", "grad_norm": "actor/grad_norm", "clipfrac": "actor/clipfrac",
                "clipfrac_high": "actor/clipfrac_high", "clipfrac_low": "actor/clipfrac_low",
                "clipfrac_dual": "actor/clipfrac_dual", "ppo_kl": "actor/ppo_kl",
                "entropy_token_mean": "actor/entropy", "skipped": "actor/skipped"}.get(key, f"actor/{key}")
        m[name] = float(np.sum(values)) if key == "skipped" else float(np.mean(values))
    m["skipped"] = m.get("actor/skipped", 0.0) > 0
    return m


# ------------------------------------------------------------------------------------------------
# evaluation (the same sampler and reward as training; the eval module reuses this contract)


def _eval_problems(cfg: TrainConfig, tokenizer):
    from coderl_jax.data.readers import read_problems

    problems, report = read_problems(cfg.data.eval_path, tokenizer=tokenizer,
                                     max_prompt_tokens=cfg.data.max_prompt_tokens, system=cfg.data.system_prompt,
                                     raw_prompts=cfg.data.raw_prompts)
    if report.skipped:
        log.warning("eval data: %s", report.summary())
    return problems[: cfg.eval.max_problems]


def evaluate(sampler, problems, tokenizer, cfg: TrainConfig, reward_fn, tracer, step: int) -> dict:
    from coderl_jax.sampling.sampler import SamplingParams

    e = cfg.eval
    sp = SamplingParams(n=e.samples, max_new_tokens=e.max_new_tokens or cfg.rollout.max_new_tokens,
                        temperature=e.temperature, top_p=cfg.rollout.top_p, stop=tuple(cfg.rollout.stop),
                        seed=_step_seed(cfg.seed, step, 7))
    prompt_ids = encode_prompts(problems, tokenizer, cfg)
    groups = sampler.generate(prompt_ids, sp)
    texts = [c.text for g in groups for c in g]
    rows = [p for p in problems for _ in range(e.samples)]
    rewards, _ = reward_fn(tracer, rows, texts, timeout_s=cfg.tracer.timeout_s)
    per_problem = np.asarray(rewards, np.float32).reshape(len(problems), e.samples)
    return {"eval/pass@1": float(np.mean(per_problem >= 1.0)), "eval/problems": len(problems)}
