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

from coderl_jax.parallel import data_parallel_size
from coderl_jax.parallel.hosts import HostShardedTracer, gather_objects, interleave, place, split_counts, to_host
from coderl_jax.rl import compute_advantages, zero_variance_fraction
from coderl_jax.alignment.probe import load_probe, probe
from coderl_jax.alignment.task import AlignmentTask, alignment_metrics
from coderl_jax.optim import learning_rate_schedule, make_optimizer
from coderl_jax.rl.train_step import (
    BATCH_FIELDS, init_train_state, make_sharded_train_step, make_train_step, sequence_logprobs, shard_batch,
)
from coderl_jax.train.config import TrainConfig
from coderl_jax.rl.rewards import get_reward
from coderl_jax.rl.packing import pack_rollouts

log = logging.getLogger("coderl_jax.train")


class TrainingStopped(RuntimeError):
    """Raised when repeated non-finite steps stop the run (the last good checkpoint is intact)."""


# ------------------------------------------------------------------------------------------------
# set-up helpers


def make_job_mesh(cfg: TrainConfig):
    """The ("data", "fsdp", "tensor") mesh of `cfg.mesh` over every device of the job, or None on a
    single device (the unsharded path)."""
    if jax.device_count() == 1:
        return None
    from coderl_jax.parallel import make_mesh

    return make_mesh(data=cfg.mesh.data, fsdp=cfg.mesh.fsdp, tensor=cfg.mesh.tensor)


def load_policy(cfg: TrainConfig, mesh=None):
    """(model config, params, tokenizer) from an HF directory, or the built-in tiny random model;
    with a mesh the parameters are placed by the training sharding rules (each host reads only the
    slices its devices hold)."""
    from coderl_jax.models.hf_io import load_hf, load_tokenizer
    from coderl_jax.models.tiny import default_model_dir

    path = default_model_dir() if cfg.model == "tiny-random" else Path(cfg.model)
    model_cfg, params = load_hf(path, mesh=mesh, param_dtype=cfg.param_dtype, dtype=cfg.dtype)
    tokenizer = load_tokenizer(path)
    return model_cfg, params, tokenizer, path


def make_tracer(cfg: TrainConfig):
    """The sandbox: the in-process pool, or a remote service. In a multi-host job each host runs
    its own block of every batch of requests and the results are gathered (HostShardedTracer)."""
    if cfg.tracer.url:
        from tracer import TracerClient

        tracer = TracerClient(cfg.tracer.url)
    else:
        from tracer import TracerPool

        tracer = TracerPool(workers=cfg.tracer.workers or None)
    return HostShardedTracer(tracer) if jax.process_count() > 1 else tracer


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
# dynamic sampling


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
    main_process = jax.process_index() == 0
    # every process holds the same global view of a step; process 0 writes the run's files, the
    # others keep their own evaluation files apart (no two writers of one file on a shared disk)
    out_dir = Path(cfg.out_dir) if main_process else Path(cfg.out_dir) / f"process_{jax.process_index()}"
    out_dir.mkdir(parents=True, exist_ok=True)
    mesh = make_job_mesh(cfg)
    model_cfg, params, tokenizer, model_path = load_policy(cfg, mesh)
    if main_process:
        (out_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")

    r = cfg.rollout
    length = cfg.data.max_prompt_tokens + r.max_new_tokens
    optim_cfg = dataclasses.replace(cfg.optim, total_steps=max(cfg.steps * cfg.updates_per_step, 1))
    optimizer = make_optimizer(optim_cfg)
    lr_schedule = learning_rate_schedule(optim_cfg)  # the optimizer's own schedule, for logging
    batch_sharding = None
    # rows are packed to varying lengths, so seq-mean-token-sum-norm divides by verl's constant:
    # the longest response
    loss_cfg = dataclasses.replace(cfg.loss, norm_len=cfg.loss.norm_len or r.max_new_tokens)
    if mesh is None:
        step_fn = make_train_step(model_cfg, loss_cfg, optimizer, num_micro=cfg.micro_batches)
        state = init_train_state(params, optimizer)
    else:
        step_fn, state_sh, batch_sharding = make_sharded_train_step(model_cfg, loss_cfg, optimizer, mesh,
                                                                     num_micro=cfg.micro_batches)
        state = jax.jit(lambda p: init_train_state(p, optimizer), out_shardings=state_sh)(params)
    stats_fn = jax.jit(lambda p, b: sequence_logprobs(
        p, model_cfg, b, temperature=cfg.loss.temperature, chunk_rows=cfg.loss.logprob_chunk_rows,
        max_unchunked_elements=cfg.loss.logprob_unchunked_elements))
    ref_params = jax.tree.map(jnp.copy, state.params) if cfg.loss.kl_coef else None
    data_kwargs = dict(split="train", seed=cfg.seed, shuffle=cfg.data.shuffle, data_dir=cfg.data.data_dir or None, tokenizer=tokenizer,
                       max_prompt_tokens=cfg.data.max_prompt_tokens, system=cfg.data.system_prompt,
                       raw_prompts=cfg.data.raw_prompts)
    data_iter = make_problem_iterator(cfg.data.train_path, **data_kwargs)  # one problem at a time
    align = AlignmentTask(cfg.alignment, tokenizer, prompts_per_step=r.prompts_per_step, group_size=r.group_size,
                          seed=cfg.seed, encode_prompts=lambda texts: encode_prompts(texts, tokenizer, cfg),
                          max_prompt_tokens=cfg.data.max_prompt_tokens)

    ckpt = Checkpointer(cfg.checkpoint_dir or Path(cfg.out_dir) / "checkpoints", keep=cfg.keep_checkpoints,
                        every=cfg.checkpoint_every, async_save=cfg.async_checkpointing)
    ckpt.write_model_config(model_cfg.to_hf())
    ckpt.write_tokenizer(tokenizer)
    start_step = 0
    if ckpt.latest_step() is not None:
        restored = ckpt.restore(params_like=state.params, opt_state_like=state.opt_state)
        start_step = restored["step"]
        updates = np.asarray(restored["extra"].get("updates", 0), np.int32)
        state = state._replace(params=restored["params"], opt_state=restored["opt_state"],
                               step=jnp.asarray(updates) if mesh is None else place(updates, state.step.sharding))
        data_iter.set_state(host_data_state(restored["data_state"], ckpt.directory))
        align.restore(restored["alignment"])
        log.info("resumed from step %d", start_step)
    metrics_writer = MetricsWriter(out_dir, resume_step=start_step, tensorboard=cfg.tensorboard,
                                   wandb_project=cfg.wandb_project or None, run_config=dataclasses.asdict(cfg),
                                   is_main=main_process)

    live = {"state": state}
    from coderl_jax.parallel import BATCH_AXES

    sampler = Sampler(model_cfg, lambda: live["state"].params, tokenizer, max_cache_len=length,
                      cache_dtype=r.cache_dtype, mesh=mesh, data_axes=BATCH_AXES,
                      **({"buckets": r.prompt_buckets} if r.prompt_buckets else {}))
    tracer = make_tracer(cfg)
    ctx = StepContext(cfg=cfg, live=live, data_iter=data_iter, tokenizer=tokenizer, sampler=sampler,
                      reward_fn=get_reward(cfg.tracer.reward), tracer=tracer, step_fn=step_fn, stats_fn=stats_fn,
                      ref_params=ref_params, length=length, align=align, batch_sharding=batch_sharding)
    eval_items = []
    if cfg.eval.every and cfg.data.eval_path:
        from coderl_jax.eval import load_benchmark

        eval_items = load_benchmark("problems", cfg.data.eval_path, limit=cfg.eval.max_problems)
    probe_records = load_probe(cfg, tracer, align) if cfg.eval.every and cfg.alignment.probe_path else []

    bar = None
    if cfg.progress and main_process:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start_step, desc="coderl train", dynamic_ncols=True)
    last, skipped_in_a_row = {}, 0
    try:
        def run_eval(step: int) -> dict:
            t0 = time.perf_counter()
            m = evaluate(sampler, eval_items, tokenizer, cfg, tracer, step, out_dir) if eval_items else {}
            if probe_records:
                m.update(probe(ctx, probe_records, step))
            m["time/eval_s"] = time.perf_counter() - t0
            return m

        if start_step == 0 and cfg.eval.every and cfg.eval.at_start and cfg.steps:
            # step 0: the starting policy on the same evaluation, the baseline every curve starts from
            metrics_writer.write(0, run_eval(0))
        for step in range(start_step + 1, cfg.steps + 1):
            t_step = time.perf_counter()
            m = _train_one_step(step, ctx)
            m["actor/lr"] = float(lr_schedule(int(live["state"].step)))
            skipped_in_a_row = skipped_in_a_row + 1 if m["skipped"] else 0
            if skipped_in_a_row >= cfg.max_skipped_steps:
                raise TrainingStopped(f"step {step}: {skipped_in_a_row} consecutive non-finite updates; "
                                      f"the last good checkpoint is step {ckpt.latest_step()}")
            if cfg.eval.every and (step % cfg.eval.every == 0 or step == cfg.steps):
                m.update(run_eval(step))
            t0 = time.perf_counter()
            ckpt.save(step, params=live["state"].params, opt_state=live["state"].opt_state,
                      rng=jax.random.key(cfg.seed), data_state=gathered_data_state(data_iter),
                      alignment_state=align.state() if align.enabled else None,
                      extra={"updates": int(live["state"].step)}, force=step == cfg.steps)
            m["time/checkpoint_s"] = time.perf_counter() - t0
            m["time/step_s"] = time.perf_counter() - t_step
            last = metrics_writer.write(step, m)
            if bar is not None:
                bar.update(1)
                nan = float("nan")  # a step without an update (alignment-only step 1) has no actor/ metrics
                bar.set_postfix(reward=f"{m['reward/mean']:.3f}", loss=f"{m.get('actor/loss', nan):.4f}",
                                kl=f"{m.get('actor/kl_loss', nan):.4f}", len=f"{m['response/length_mean']:.0f}")
        ckpt.wait()
    finally:
        if bar is not None:
            bar.close()
        ckpt.close()
        metrics_writer.close()
        if hasattr(tracer, "close"):
            tracer.close()
    return last


@dataclasses.dataclass
class StepContext:
    """What every training step uses (built once by `train`)."""

    cfg: TrainConfig
    live: dict  # {"state": TrainState}; the sampler reads the current params through it
    data_iter: object
    tokenizer: object
    sampler: object
    reward_fn: object
    tracer: object
    step_fn: object
    stats_fn: object  # jitted (params, batch) -> (logprobs [B, L], entropy [B, L])
    ref_params: object
    length: int
    align: AlignmentTask
    batch_sharding: object = None  # rows over the mesh's batch axes; None on a single device

    def draw(self, n: int) -> list:
        """n problems, the same on every process: each process reads its share from its own data
        shard and the shares are gathered and interleaved (with H hosts each reading records
        h, h+H, ... of an unshuffled dataset, the global order is the dataset's)."""
        if jax.process_count() == 1:
            return [next(self.data_iter) for _ in range(n)]
        mine = [next(self.data_iter) for _ in range(split_counts(n, jax.process_count())[jax.process_index()])]
        return interleave(gather_objects(mine))

    def encode(self, prompts) -> list[list[int]]:
        return encode_prompts(prompts, self.tokenizer, self.cfg)

    def device_batch(self, batch: dict) -> dict:
        """The host batch (the same on every process) on the devices: on a mesh, rows split over
        the batch axes, each process copying only its devices' rows."""
        fields = {k: batch[k] for k in BATCH_FIELDS if k in batch}
        if self.batch_sharding is None:
            return {k: jnp.asarray(v) for k, v in fields.items()}
        return shard_batch(fields, self.batch_sharding)

    def data_shards(self) -> int:
        """How many ways a batch's rows are split over the devices (1 on a single device)."""
        return 1 if self.batch_sharding is None else data_parallel_size(self.batch_sharding.mesh)

    def row_multiple(self) -> int:
        """Rows of an update mini-batch must be a multiple of this (data-parallel devices x micro-batches)."""
        return self.data_shards() * self.cfg.micro_batches

    def logprobs(self, params, batch: dict) -> tuple[np.ndarray, np.ndarray]:
        """(logprobs, entropy) [B, L] as host arrays; on a mesh the rows are padded to a multiple of
        the data-parallel devices and the padding dropped again."""
        rows = len(batch["tokens"])
        lp, ent = self.stats_fn(params, self.device_batch(_pad_rows(batch, self.data_shards())))
        return to_host(lp)[:rows], to_host(ent)[:rows]


def gathered_data_state(data_iter):
    """The data position to checkpoint: the iterator's state, or with several processes every
    process's state (a list indexed by process) so that each host resumes its own shard."""
    if jax.process_count() == 1:
        return data_iter.get_state()
    return {"per_process": gather_objects(data_iter.get_state())}


def host_data_state(saved, where) -> dict:
    if isinstance(saved, dict) and "per_process" in saved:
        states = saved["per_process"]
        if len(states) != jax.process_count():
            raise ValueError(f"{where}: the checkpoint was written by {len(states)} processes, this job has "
                             f"{jax.process_count()}; resume with the same number of hosts")
        return states[jax.process_index()]
    if jax.process_count() > 1:
        raise ValueError(f"{where}: the checkpoint holds one data position, this job has {jax.process_count()} "
                         "processes; resume with one host")
    return saved


def _sample(ctx: StepContext, prompt_ids, seed: int):
    from coderl_jax.sampling.sampler import SamplingParams

    r = ctx.cfg.rollout
    sp = SamplingParams(n=r.group_size, max_new_tokens=r.max_new_tokens, temperature=r.temperature, top_p=r.top_p,
                        top_k=r.top_k, stop=tuple(r.stop), seed=seed)
    t0 = time.perf_counter()
    per_call = r.prompts_per_generate or len(prompt_ids)  # bounds the KV cache on a pod
    groups = []
    for start in range(0, len(prompt_ids), per_call):
        groups += ctx.sampler.generate(prompt_ids[start:start + per_call],
                                       dataclasses.replace(sp, seed=sp.seed + start))
    return groups, time.perf_counter() - t0


def _score(ctx: StepContext, params, batch: dict):
    """(logprobs, entropy) of a rollout batch as host arrays, scored one micro-batch of rows at a
    time (the rows of one update micro-batch: the activations `coderl plan` budgets for)."""
    rows = len(batch["tokens"])
    per_call = max(rows // (ctx.cfg.updates_per_step * ctx.cfg.micro_batches), 1)
    if per_call >= rows:
        return ctx.logprobs(params, batch)
    parts = [ctx.logprobs(params, {k: v[i:i + per_call] for k, v in batch.items()}) for i in range(0, rows, per_call)]
    return tuple(np.concatenate(xs, axis=0) for xs in zip(*parts))


def _code_rewards(ctx: StepContext, problems, completions):
    g = ctx.cfg.rollout.group_size
    rows = [p for p in problems for _ in range(g)]
    t0 = time.perf_counter()
    rewards, info = ctx.reward_fn(ctx.tracer, rows, [c.text for c in completions], timeout_s=ctx.cfg.tracer.timeout_s)
    return np.asarray(rewards, np.float32), info, time.perf_counter() - t0


def _train_one_step(step: int, ctx: StepContext) -> dict:
    cfg, align = ctx.cfg, ctx.align
    r = cfg.rollout
    g = r.group_size
    # [1] the mixed prompt batch: alignment records from the previous step's harvest, code problems
    records = align.records_for_step(step)
    n_code = r.prompts_per_step - len(records)
    problems = ctx.draw(n_code)
    code_ids, align_ids = ctx.encode(problems), align.prompt_ids(records)
    # [2] one rollout for both tasks (a constant batch shape: one compiled sampler)
    groups, t_sample = _sample(ctx, code_ids + align_ids, _step_seed(cfg.seed, step))
    code_c = [c for grp in groups[:n_code] for c in grp]
    align_c = [c for grp in groups[n_code:] for c in grp]
    # [3] code rewards through the tracer
    code_r, info, t_reward = _code_rewards(ctx, problems, code_c)
    statuses = info.get("status", [])
    # a graded reward (test_fraction) says which rollouts passed every test; a binary one is its own verdict
    solved = np.asarray(info["passed"], bool) if "passed" in info else code_r >= 1.0
    code_pass = float(np.mean(solved)) if len(code_r) else 0.0
    code_len = float(np.mean([len(c.token_ids) for c in code_c])) if code_c else 0.0
    # [4] harvest this step's failed code rollouts: they feed the next step's alignment prompts
    t0 = time.perf_counter()
    harvest_m = align.harvest(ctx.tracer, [p for p in problems for _ in range(g)], [c.text for c in code_c],
                              solved.astype(np.float32), step)  # failed programs: not every test passed
    t_harvest = time.perf_counter() - t0
    rounds, zero_var_code = 0, float(zero_variance_fraction(code_r, g)) if n_code else 0.0
    if r.dynamic_sampling and n_code:  # DAPO on the code part: keep groups with signal, refill
        timings = [t_sample, t_reward]

        def draw_more(round_index):
            more = ctx.draw(r.prompts_per_step)
            more_ids = ctx.encode(more)
            more_groups, ts = _sample(ctx, more_ids, _step_seed(cfg.seed, step, round_index))
            more_c = [c for grp in more_groups for c in grp]
            more_r, _, tr = _code_rewards(ctx, more, more_c)
            timings[0] += ts
            timings[1] += tr
            return Round(more, more_ids, more_c, more_r)

        chosen, rounds = fill_with_signal(Round(problems, code_ids, code_c, code_r), draw_more,
                                          prompts_needed=n_code, group_size=g, max_extra_rounds=r.max_extra_rounds)
        problems, code_ids, code_c, code_r = chosen
        t_sample, t_reward = timings
    # alignment rewards: parsed answers compared with the traced truth (nothing is executed)
    m: dict = {}
    token_adv = None
    if records:
        scored = align.score(records, align_c)
        align_r = scored.rewards
        if align.cfg.reward == "likelihood":
            t0 = time.perf_counter()
            align_r = _likelihood_rewards(ctx, align_ids, align_c, scored)
            m["time/likelihood_s"] = time.perf_counter() - t0
        m.update(alignment_metrics(scored, align_c, align_r))
    else:
        align_r = np.zeros(0, np.float32)
    rewards = np.concatenate([code_r, align_r]).astype(np.float32)
    completions = code_c + align_c
    prompt_ids = code_ids + align_ids
    # [5] advantages per prompt group (both tasks alike)
    advantages = np.asarray(compute_advantages(rewards, g, cfg.advantage), np.float32)
    if records and align.cfg.per_variable_credit:
        token_adv = [np.full(len(c.token_ids), a, np.float32) for c, a in zip(code_c, advantages)]
        token_adv += align.token_advantages(scored, align_c, advantages[len(code_c):], cfg.advantage)
    trained = None
    if align.cfg.mode == "only":  # code rows are rolled out for the harvest but not trained
        trained = [np.full(len(c.token_ids), i >= len(code_c), bool) for i, c in enumerate(completions)]
    row_prompts = [p for p in prompt_ids for _ in range(g)]
    rows = len(completions)
    n_code_rows = len(code_c)
    # code rows and alignment rows are packed apart, each to its own bucketed length (alignment
    # prompts carry a whole program and are several times longer than code prompts): one
    # mini-batch of two segments, normalised together (rl/train_step.py)
    segments = []
    for name, idx in (("code", np.arange(0, n_code_rows)), ("align", np.arange(n_code_rows, rows))):
        if not len(idx):
            continue
        seg = pack_rollouts([row_prompts[i] for i in idx], [completions[i].token_ids for i in idx],
                            length=_pack_length(row_prompts, completions, idx, ctx.length),
                            pad_id=ctx.sampler.pad_id(), sampler_logprobs=[completions[i].logprobs for i in idx],
                            advantages=advantages[idx],
                            token_advantages=None if token_adv is None else [token_adv[i] for i in idx],
                            response_loss_mask=None if trained is None else [trained[i] for i in idx])
        segments.append((name, idx, seg))
    # [6] update: trainer's old / reference log-probs, then `updates_per_step` jitted steps
    t0 = time.perf_counter()
    hosts, entropies = [], {}
    diff_sum = diff_count = 0.0
    for name, idx, seg in segments:
        host = {k: seg[k] for k in BATCH_FIELDS if k in seg}
        old, entropy = _score(ctx, ctx.live["state"].params, host)
        host["old_logprobs"] = old
        if ctx.ref_params is not None:
            host["ref_logprobs"] = _score(ctx, ctx.ref_params, host)[0]
        mask = seg["loss_mask"]
        diff_sum += float(np.abs(old - seg["sampler_logprobs"])[mask].sum())
        diff_count += float(mask.sum())
        positions = _response_positions([row_prompts[i] for i in idx], [completions[i] for i in idx],
                                        seg["tokens"].shape[1])
        if positions.any():
            entropies[f"entropy/{name}"] = float(np.asarray(entropy)[positions].mean())
        hosts.append(host)
    sampler_diff = diff_sum / diff_count if diff_count else 0.0
    # every segment is split evenly over the mini-batches (a stratified shuffle of the rows)
    orders = [np.random.RandomState(_step_seed(cfg.seed, step, 99 + i)).permutation(len(h["tokens"]))
              for i, h in enumerate(hosts)]
    update_metrics = []
    for u in range(cfg.updates_per_step):
        parts = []
        for host, order in zip(hosts, orders):
            per_update = len(order) // cfg.updates_per_step
            idx = order[u * per_update:(u + 1) * per_update]
            if len(idx) and host["loss_mask"][idx].any():
                parts.append(ctx.device_batch(_pad_rows({k: v[idx] for k, v in host.items()},
                                                        ctx.row_multiple())))
        if not parts:  # nothing to train in this mini-batch (alignment-only, buffer empty)
            continue
        new_state, um = ctx.step_fn(ctx.live["state"], tuple(parts), jax.random.key(step))
        ctx.live["state"] = new_state
        update_metrics.append(jax.device_get(um))
    t_update = time.perf_counter() - t0
    trained_tokens = sum(int(h["attn_mask"].sum()) for h in hosts)

    lengths = np.array([len(c.token_ids) for c in completions])
    m.update({
        "reward/mean": float(rewards.mean()), "reward/std": float(rewards.std()),
        "reward/pass_rate": code_pass, "reward/code/mean": float(code_r.mean()) if len(code_r) else 0.0,
        "reward/zero_variance_frac": float(zero_variance_fraction(rewards, g)),
        "reward/code/zero_variance_frac": zero_var_code, "reward/dynamic_rounds": rounds,
        "advantage/mean": float(advantages.mean()), "advantage/std": float(advantages.std()),
        "advantage/max": float(advantages.max()), "advantage/min": float(advantages.min()),
        "response/length_mean": float(lengths.mean()), "response/length_max": int(lengths.max()),
        "response/code/length_mean": code_len,
        "response/clip_ratio": float(np.mean([c.finish_reason == "length" for c in completions])),
        "rollout/sampler_trainer_logprob_diff": sampler_diff,
        "align/prompts": len(records),
        "time/rollout_s": t_sample, "time/reward_s": t_reward, "time/harvest_s": t_harvest,
        "time/update_s": t_update,
        "perf/rollout_tokens_per_s": float(lengths.sum() / max(t_sample, 1e-9)),
        "perf/update_tokens_per_s": float(trained_tokens / max(t_update, 1e-9)),
        "perf/update_padded_frac": 1.0 - trained_tokens / max(sum(h["attn_mask"].size for h in hosts), 1),
    })
    m.update(entropies)
    m.update(harvest_m)
    for status in sorted(set(statuses)):
        m[f"reward/status_{status}"] = float(np.mean([s == status for s in statuses]))
    m.update(_update_metrics(update_metrics))
    return m


def _pack_length(row_prompts, completions, idx, cap: int) -> int:
    """The packed length of some rows: the shortest power of two (from 128) that holds the longest
    prompt plus the longest response, or `cap` (prompt limit + max new tokens). Few distinct
    lengths: few compiled train steps."""
    needed = max(len(row_prompts[i]) for i in idx) + max(len(completions[i].token_ids) for i in idx)
    length = 128
    while length < needed:
        length *= 2
    return min(length, cap)


def _pad_rows(batch: dict, multiple: int) -> dict:
    """Rows padded to a multiple of `multiple` (data-parallel devices, times micro-batches for an
    update) with copies of the first row that train nothing (loss mask off, advantage 0)."""
    extra = -len(batch["tokens"]) % multiple
    if not extra:
        return batch
    pad = {k: np.repeat(v[:1], extra, axis=0) for k, v in batch.items()}
    for k in ("loss_mask", "advantages"):
        if k in pad:
            pad[k] = np.zeros_like(pad[k])
    return {k: np.concatenate([batch[k], pad[k]]) for k in batch}


def _response_positions(row_prompts, completions, length: int) -> np.ndarray:
    """bool [B, L]: the predicting positions of every response token, trained or not (the packing
    layout of rl/packing.py: responses start at the column after the longest prompt)."""
    out = np.zeros((len(completions), length), bool)
    start = max(len(p) for p in row_prompts) - 1
    for i, c in enumerate(completions):
        out[i, start:start + len(c.token_ids)] = True
    return out


_ACTOR_NAMES = {"loss": "actor/loss", "pg_loss": "actor/pg_loss", "kl_loss": "actor/kl_loss",
                "entropy_loss": "actor/entropy_loss", "grad_norm": "actor/grad_norm", "clipfrac": "actor/clipfrac",
                "clipfrac_high": "actor/clipfrac_high", "clipfrac_low": "actor/clipfrac_low",
                "clipfrac_dual": "actor/clipfrac_dual", "ppo_kl": "actor/ppo_kl",
                "entropy_token_mean": "actor/entropy", "skipped": "actor/skipped"}


def _update_metrics(update_metrics: list[dict]) -> dict:
    m: dict = {"actor/updates": len(update_metrics)}
    for key in (update_metrics[0] if update_metrics else {}):
        values = [float(um[key]) for um in update_metrics]
        name = _ACTOR_NAMES.get(key, f"actor/{key}")
        m[name] = float(np.sum(values)) if key == "skipped" else float(np.mean(values))
    m["skipped"] = m.get("actor/skipped", 0.0) > 0
    return m


def _likelihood_rewards(ctx: StepContext, align_ids, align_c, scored) -> np.ndarray:
    """The dense alignment reward: mean log-prob of the true values teacher-forced after each
    sample's reasoning, under the current policy."""
    g = ctx.cfg.rollout.group_size
    responses, masks = ctx.align.teacher_forced_rows(scored, align_c)
    params = ctx.live["state"].params
    return ctx.align.likelihood(lambda b: ctx.logprobs(params, b)[0],
                                [p for p in align_ids for _ in range(g)], responses, masks)


# ------------------------------------------------------------------------------------------------
# evaluation (the same sampler and reward as training; the eval module reuses this contract)


def evaluate(sampler, items, tokenizer, cfg: TrainConfig, tracer, step: int, out_dir: Path | None = None) -> dict:
    """Periodic evaluation through `coderl_jax.eval` (the same code as `coderl eval`): pass@1 on the
    held-out problems, written under `<out_dir>/eval/step_<step>/` (resumable)."""
    from coderl_jax.eval import SamplerGenerator, evaluate as eval_benchmark, settings_for

    e = cfg.eval
    settings = settings_for("problems", n=e.samples, k=(1,), temperature=e.temperature, top_p=cfg.rollout.top_p,
                            max_new_tokens=e.max_new_tokens or cfg.rollout.max_new_tokens,
                            seed=_step_seed(cfg.seed, step, 7), raw_prompt=cfg.data.raw_prompts,
                            system=cfg.data.system_prompt, stop=tuple(cfg.rollout.stop), timeout_s=cfg.tracer.timeout_s,
                            batch_size=max(len(items), 1))
    generator = SamplerGenerator(sampler, tokenizer, identity={"run": str(Path(cfg.out_dir).absolute())})
    out_dir = Path(cfg.out_dir) if out_dir is None else out_dir
    summary = eval_benchmark("problems", items, generator, tracer, out_dir / "eval" / f"step_{step}",
                             settings, data_path=cfg.data.eval_path, progress=False)
    return {"eval/pass@1": float(summary["pass@1"]), "eval/problems": len(items)}
