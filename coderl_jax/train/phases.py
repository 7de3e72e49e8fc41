"""One training step as named phases.

    prompts -> rollout -> code rewards -> harvest -> [dynamic sampling] -> alignment rewards
        -> advantages -> pack -> score -> update -> metrics

`run_step(run, step)` calls them in that order and reads top to bottom. Each phase takes the
`Run` (what every step uses, built once by `coderl_jax.train.loop.build_run`) and typed values
(`StepBatch`: the step's rollouts as the phases fill them in; `Segment`: packed rows), and returns
new values, so a fork can replace one phase without reading the others.

Everything random is derived from (config.seed, step), so a resumed run repeats the steps it
would have taken.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from coderl_jax.alignment.task import AlignmentTask, alignment_metrics
from coderl_jax.parallel import data_parallel_size
from coderl_jax.parallel.hosts import gather_objects, interleave, split_counts, to_host
from coderl_jax.rl import compute_advantages, zero_variance_fraction
from coderl_jax.rl.packing import pack_rollouts
from coderl_jax.rl.train_step import BATCH_FIELDS, shard_batch
from coderl_jax.train.config import TrainConfig


def step_seed(seed: int, step: int, salt: int = 0) -> int:
    """A seed for one purpose (`salt`) at one step of one run."""
    return int(np.random.SeedSequence([seed, step, salt]).generate_state(1)[0] % (2**31 - 1))


def encode_prompts(problems, tokenizer, cfg: TrainConfig) -> list[list[int]]:
    """Prompt token ids, rendered with the run's chat template and cut to `max_prompt_tokens`
    from the left."""
    from coderl_jax.data.chat import render_prompt

    ids = []
    for p in problems:
        text = render_prompt(p, tokenizer, system=cfg.data.system_prompt, raw=cfg.data.raw_prompts)
        ids.append(list(tokenizer.encode(text, add_special_tokens=False))[-cfg.data.max_prompt_tokens:])
    return ids


# ------------------------------------------------------------------------------------------------
# what a step works with


@dataclasses.dataclass
class Run:
    """What every step uses, built once per run. `state` is the only field a step changes (the
    sampler and the hooks read the current parameters from it)."""

    cfg: TrainConfig
    state: Any  # TrainState: step, params, optimizer state
    tokenizer: Any
    problems: Any  # the data iterator: one problem per next()
    sampler: Any  # samples from `sampling_params()`, the copy of the current params
    reward_fn: Callable  # (tracer, problems, texts, timeout_s=) -> (rewards, info)
    tracer: Any
    update_fn: Callable  # jitted (state, batch parts, rng) -> (state, metrics)
    score_fn: Callable  # jitted (params, batch) -> (log-probs [B, L], entropy [B, L])
    lr_schedule: Callable  # update count -> learning rate (for logging)
    ref_params: Any  # the frozen reference policy's params, None without a KL term
    max_len: int  # prompt limit + max new tokens: the longest row
    align: AlignmentTask
    batch_sharding: Any = None  # rows over the mesh's batch axes; None on a single device
    reshard_fn: Callable | None = None  # jitted params -> the sampling copy (None: sample the trainer's params)
    _copy: tuple = dataclasses.field(default=(None, None), repr=False)  # (state it was made from, copy)

    def sampling_params(self):
        """The sampler's copy of the current parameters (`rollout.dtype`, the sampling layout),
        made by one jitted program the first time it is asked for after an update."""
        if self.reshard_fn is None:
            return self.state.params
        state, copy = self._copy
        if state is not self.state:
            copy = self.reshard_fn(self.state.params)
            self._copy = (self.state, copy)
        return copy

    def draw(self, n: int) -> list:
        """n problems, the same on every process: each process reads its share from its own data
        shard and the shares are gathered and interleaved (with H hosts each reading records
        h, h+H, ... of an unshuffled dataset, the global order is the dataset's)."""
        if jax.process_count() == 1:
            return [next(self.problems) for _ in range(n)]
        mine = [next(self.problems) for _ in range(split_counts(n, jax.process_count())[jax.process_index()])]
        return interleave(gather_objects(mine))

    def encode(self, problems) -> list[list[int]]:
        return encode_prompts(problems, self.tokenizer, self.cfg)

    def on_devices(self, rows: dict) -> dict:
        """Host rows (the same on every process) on the devices: on a mesh, rows split over the
        batch axes, each process copying only its devices' rows."""
        fields = {k: rows[k] for k in BATCH_FIELDS if k in rows}
        if self.batch_sharding is None:
            return {k: jnp.asarray(v) for k, v in fields.items()}
        return shard_batch(fields, self.batch_sharding)

    def data_shards(self) -> int:
        """How many ways a batch's rows are split over the devices (1 on a single device)."""
        return 1 if self.batch_sharding is None else data_parallel_size(self.batch_sharding.mesh)

    def row_multiple(self) -> int:
        """Rows of an update mini-batch must be a multiple of this (data-parallel devices x micro-batches)."""
        return self.data_shards() * self.cfg.micro_batches

    def logprobs(self, params, rows: dict) -> tuple[np.ndarray, np.ndarray]:
        """(log-probs, entropy) [B, L] as host arrays; on a mesh the rows are padded to a multiple
        of the data-parallel devices and the padding dropped again."""
        n = len(rows["tokens"])
        lp, ent = self.score_fn(params, self.on_devices(pad_rows(rows, self.data_shards())))
        return to_host(lp)[:n], to_host(ent)[:n]


@dataclasses.dataclass(frozen=True)
class StepBatch:
    """One step's prompts and rollouts. Rows are code rows first, then alignment rows; each prompt
    has `group_size` consecutive rows."""

    step: int
    problems: list  # code problems
    code_prompt_ids: list  # [n_code][prompt tokens]
    records: list  # alignment records (prompts built from earlier steps' harvests)
    align_prompt_ids: list  # [n_align][prompt tokens]
    code_completions: list = ()  # [n_code * G] sampler Completions
    align_completions: list = ()  # [n_align * G]
    code_rewards: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    code_info: dict = dataclasses.field(default_factory=dict)  # the reward's per-row info (status, passed)
    align_scored: Any = None  # alignment.task.Scored: parsed answers against the traced truth
    align_rewards: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    advantages: np.ndarray | None = None  # [rows] per-sample advantages
    token_advantages: list | None = None  # [rows][response tokens] with per-variable credit
    trained: list | None = None  # [rows][response tokens] bool, when some response tokens are not trained
    dynamic_rounds: int = 0  # extra rollout rounds drawn by dynamic sampling
    code_zero_variance: float = 0.0  # share of code groups with one reward, before dynamic sampling
    metrics: dict = dataclasses.field(default_factory=dict)  # metrics a phase reports as it goes
    seconds: dict = dataclasses.field(default_factory=dict)  # wall time per phase

    @property
    def completions(self) -> list:
        return list(self.code_completions) + list(self.align_completions)

    @property
    def prompt_ids(self) -> list:
        return list(self.code_prompt_ids) + list(self.align_prompt_ids)

    @property
    def rewards(self) -> np.ndarray:
        return np.concatenate([self.code_rewards, self.align_rewards]).astype(np.float32)

    @property
    def code_solved(self) -> np.ndarray:
        """bool [n_code * G]: every test passed. A graded reward (test_fraction) reports it in
        info['passed']; a binary reward is its own verdict."""
        if "passed" in self.code_info:
            return np.asarray(self.code_info["passed"], bool)
        return self.code_rewards >= 1.0

    def row_prompts(self, group_size: int) -> list:
        return [p for p in self.prompt_ids for _ in range(group_size)]

    def add(self, metrics: dict | None = None, **seconds: float) -> "StepBatch":
        """A copy with more metrics and phase times (times of one phase add up)."""
        secs = dict(self.seconds)
        for k, v in seconds.items():
            secs[k] = secs.get(k, 0.0) + v
        return dataclasses.replace(self, metrics={**self.metrics, **(metrics or {})}, seconds=secs)


class Segment(NamedTuple):
    """Packed rows of one task (code or alignment), each task to its own length."""

    name: str  # "code" | "align"
    rows: np.ndarray  # indices into the step's rows
    arrays: dict  # pack_rollouts' output: tokens, positions, masks, advantages, sampler log-probs [B, L]


class Scored(NamedTuple):
    """Segments with the trainer's old (and reference) log-probs, ready for the update."""

    rows: list  # per segment: BATCH_FIELDS arrays [B, L] on the host
    entropy: dict  # "entropy/code", "entropy/align": mean over response tokens
    sampler_logprob_diff: float  # mean |trainer - sampler| log-prob over trained tokens
    row_ids: tuple = ()  # per segment: its rows' indices into the step's rows (code rows first)
    n_code: int = 0  # how many of the step's rows are code rows


def task_strata(row_ids: np.ndarray, n_code: int) -> list[np.ndarray]:
    """Positions within a segment of its code rows and of its alignment rows (the non-empty ones)."""
    positions = np.arange(len(row_ids))
    return [g for g in (positions[row_ids < n_code], positions[row_ids >= n_code]) if len(g)]


# ------------------------------------------------------------------------------------------------
# the phases


def prompts(run: Run, step: int) -> StepBatch:
    """The mixed prompt batch: alignment records from earlier harvests, code problems for the rest."""
    records = run.align.records_for_step(step)
    problems = run.draw(run.cfg.rollout.prompts_per_step - len(records))
    return StepBatch(step=step, problems=problems, code_prompt_ids=run.encode(problems), records=records,
                     align_prompt_ids=run.align.prompt_ids(records))


def sample(run: Run, prompt_ids: list, seed: int) -> tuple[list, float]:
    """`group_size` completions per prompt, in sampler calls of at most `prompts_per_generate`
    prompts (bounds the KV cache on a pod), each call with its own seed. Returns (groups, seconds)."""
    from coderl_jax.train.programs import rollout_sampling_params

    r = run.cfg.rollout
    params = rollout_sampling_params(run.cfg, seed)
    t0 = time.perf_counter()
    per_call = r.prompts_per_generate or len(prompt_ids)
    groups = []
    for start in range(0, len(prompt_ids), per_call):
        groups += run.sampler.generate(prompt_ids[start:start + per_call],
                                       dataclasses.replace(params, seed=params.seed + start))
    return groups, time.perf_counter() - t0


def rollout(run: Run, batch: StepBatch) -> StepBatch:
    """One rollout of both tasks' prompts together (one batch shape: one compiled sampler)."""
    groups, seconds = sample(run, batch.prompt_ids, step_seed(run.cfg.seed, batch.step))
    n_code = len(batch.problems)
    return dataclasses.replace(batch, code_completions=[c for g in groups[:n_code] for c in g],
                               align_completions=[c for g in groups[n_code:] for c in g]).add(rollout=seconds)


def reward_code(run: Run, problems: list, completions: list) -> tuple[np.ndarray, dict, float]:
    """Unit-test rewards of code completions through the sandbox: (rewards, info, seconds)."""
    g = run.cfg.rollout.group_size
    rows = [p for p in problems for _ in range(g)]
    t0 = time.perf_counter()
    rewards, info = run.reward_fn(run.tracer, rows, [c.text for c in completions], timeout_s=run.cfg.tracer.timeout_s)
    return np.asarray(rewards, np.float32), info, time.perf_counter() - t0


def code_rewards(run: Run, batch: StepBatch) -> StepBatch:
    """Unit-test rewards of the step's code rollouts. The pass rate, statuses and lengths logged
    are this first round's, whatever dynamic sampling later keeps."""
    rewards, info, seconds = reward_code(run, batch.problems, batch.code_completions)
    g = run.cfg.rollout.group_size
    batch = dataclasses.replace(batch, code_rewards=rewards, code_info=info,
                                code_zero_variance=float(zero_variance_fraction(rewards, g)) if batch.problems else 0.0)
    lengths = [len(c.token_ids) for c in batch.code_completions]
    statuses = info.get("status", [])
    m = {"reward/pass_rate": float(np.mean(batch.code_solved)) if len(rewards) else 0.0,
         "response/code/length_mean": float(np.mean(lengths)) if lengths else 0.0}
    for status in sorted(set(statuses)):
        m[f"reward/status_{status}"] = float(np.mean([x == status for x in statuses]))
    return batch.add(m, reward=seconds)


def harvest(run: Run, batch: StepBatch) -> StepBatch:
    """Failed code programs (not every test passed) are traced on their first input; the records
    feed later steps' alignment prompts."""
    g = run.cfg.rollout.group_size
    t0 = time.perf_counter()
    m = run.align.harvest(run.tracer, [p for p in batch.problems for _ in range(g)],
                          [c.text for c in batch.code_completions], batch.code_solved.astype(np.float32), batch.step)
    return batch.add(m, harvest=time.perf_counter() - t0)


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


def keep_groups_with_signal(run: Run, batch: StepBatch) -> StepBatch:
    """DAPO on the code part: code groups whose rewards are all equal are replaced by groups of
    freshly drawn problems (`fill_with_signal`)."""
    r = run.cfg.rollout
    seconds = {"rollout": 0.0, "reward": 0.0}

    def draw_more(round_index: int) -> Round:
        more = run.draw(r.prompts_per_step)
        more_ids = run.encode(more)
        groups, ts = sample(run, more_ids, step_seed(run.cfg.seed, batch.step, round_index))
        completions = [c for g in groups for c in g]
        rewards, _, tr = reward_code(run, more, completions)
        seconds["rollout"] += ts
        seconds["reward"] += tr
        return Round(more, more_ids, completions, rewards)

    first = Round(batch.problems, batch.code_prompt_ids, batch.code_completions, batch.code_rewards)
    chosen, rounds = fill_with_signal(first, draw_more, prompts_needed=len(batch.problems), group_size=r.group_size,
                                      max_extra_rounds=r.max_extra_rounds)
    return dataclasses.replace(batch, problems=chosen.problems, code_prompt_ids=chosen.prompt_ids,
                               code_completions=chosen.completions, code_rewards=chosen.rewards,
                               dynamic_rounds=rounds).add(**seconds)


def alignment_rewards(run: Run, batch: StepBatch) -> StepBatch:
    """Parsed answers compared with the traced truth (nothing is executed); with
    `alignment.reward=likelihood`, the log-probability of the true values after each sample's
    reasoning instead."""
    if not batch.records:
        return batch
    align = run.align
    scored = align.score(batch.records, batch.align_completions)
    rewards, m = scored.rewards, {}
    if align.cfg.reward == "likelihood":
        t0 = time.perf_counter()
        rewards = likelihood_rewards(run, batch.align_prompt_ids, batch.align_completions, scored)
        m["time/likelihood_s"] = time.perf_counter() - t0
    m.update(alignment_metrics(scored, batch.align_completions, rewards, run.cfg.rollout.group_size))
    return dataclasses.replace(batch, align_scored=scored, align_rewards=rewards).add(m)


def likelihood_rewards(run: Run, prompt_ids: list, completions: list, scored) -> np.ndarray:
    """The dense alignment reward: mean log-prob of the true values teacher-forced after each
    sample's reasoning, under the current policy."""
    g = run.cfg.rollout.group_size
    responses, masks = run.align.teacher_forced_rows(scored, completions)
    params = run.state.params
    return run.align.likelihood(lambda rows: run.logprobs(params, rows)[0],
                                [p for p in prompt_ids for _ in range(g)], responses, masks)


def advantages(run: Run, batch: StepBatch) -> StepBatch:
    """Group-normalised advantages per prompt, both tasks alike; with per-variable credit each
    predicted value's tokens get that value's own advantage."""
    cfg, align = run.cfg, run.align
    adv = np.asarray(compute_advantages(batch.rewards, cfg.rollout.group_size, cfg.advantage), np.float32)
    n_code = len(batch.code_completions)
    token_adv = trained = None
    if batch.records and align.cfg.per_variable_credit:
        token_adv = [np.full(len(c.token_ids), a, np.float32) for c, a in zip(batch.code_completions, adv)]
        token_adv += align.token_advantages(batch.align_scored, batch.align_completions, adv[n_code:], cfg.advantage)
    if align.cfg.mode == "only":  # code rows are rolled out for the harvest but not trained
        trained = [np.full(len(c.token_ids), i >= n_code, bool) for i, c in enumerate(batch.completions)]
    return dataclasses.replace(batch, advantages=adv, token_advantages=token_adv, trained=trained)


def pack(run: Run, batch: StepBatch) -> list[Segment]:
    """The step's rows packed for scoring and the update. By default code rows and alignment rows
    are packed apart, each to its own bucketed length (alignment prompts carry a whole program and
    are several times longer than code prompts): one mini-batch of two segments, normalised
    together (rl/train_step.py). With `packed_lengths` declared, all rows go in one segment at the
    shortest declared length that holds them (fixed shapes: nothing new compiles)."""
    row_prompts = batch.row_prompts(run.cfg.rollout.group_size)
    completions = batch.completions
    n_code = len(batch.code_completions)
    declared = run.cfg.packed_lengths
    tasks = ((("all", np.arange(len(completions))),) if declared else
             (("code", np.arange(0, n_code)), ("align", np.arange(n_code, len(completions)))))
    segments = []
    for name, rows in tasks:
        if not len(rows):
            continue
        arrays = pack_rollouts(
            [row_prompts[i] for i in rows], [completions[i].token_ids for i in rows],
            length=pack_length([len(row_prompts[i]) for i in rows], [len(completions[i].token_ids) for i in rows],
                               run.max_len, declared),
            pad_id=run.sampler.pad_id(), sampler_logprobs=[completions[i].logprobs for i in rows],
            advantages=batch.advantages[rows],
            token_advantages=None if batch.token_advantages is None else [batch.token_advantages[i] for i in rows],
            response_loss_mask=None if batch.trained is None else [batch.trained[i] for i in rows])
        segments.append(Segment(name, rows, arrays))
    return segments


def pack_length(prompt_lengths: list[int], response_lengths: list[int], cap: int,
                declared: tuple[int, ...] = ()) -> int:
    """The packed length of some rows: the shortest `declared` length that holds the longest prompt
    plus the longest response; without declared lengths, the shortest power of two (from 128)
    that does, or `cap` (prompt limit + max new tokens). Few distinct lengths: few compiled train
    steps."""
    needed = max(prompt_lengths) + max(response_lengths)
    if declared:
        return min(n for n in declared if n >= needed)
    length = 128
    while length < needed:
        length *= 2
    return min(length, cap)


def score_rows(run: Run, params, rows: dict) -> tuple[np.ndarray, np.ndarray]:
    """(log-probs, entropy) of packed rows as host arrays, scored one update micro-batch of rows at
    a time (the activations `coderl plan` budgets for)."""
    n = len(rows["tokens"])
    per_call = max(n // (run.cfg.updates_per_step * run.cfg.micro_batches), 1)
    if per_call >= n:
        return run.logprobs(params, rows)
    parts = [run.logprobs(params, {k: v[i:i + per_call] for k, v in rows.items()}) for i in range(0, n, per_call)]
    return tuple(np.concatenate(xs, axis=0) for xs in zip(*parts))


def score(run: Run, batch: StepBatch, segments: list[Segment]) -> Scored:
    """The trainer's old log-probs (and the reference policy's, with a KL term) of every row."""
    row_prompts = batch.row_prompts(run.cfg.rollout.group_size)
    completions = batch.completions
    rows_out, entropy = [], {}
    diff_sum = diff_count = 0.0
    n_code = len(batch.code_completions)
    for seg in segments:
        rows = {k: seg.arrays[k] for k in BATCH_FIELDS if k in seg.arrays}
        old, ent = score_rows(run, run.state.params, rows)
        rows["old_logprobs"] = old
        if run.ref_params is not None:
            rows["ref_logprobs"] = score_rows(run, run.ref_params, rows)[0]
        mask = seg.arrays["loss_mask"]
        diff_sum += float(np.abs(old - seg.arrays["sampler_logprobs"])[mask].sum())
        diff_count += float(mask.sum())
        positions = response_positions([row_prompts[i] for i in seg.rows], [completions[i] for i in seg.rows],
                                       seg.arrays["tokens"].shape[1])
        for task, of_task in (("code", seg.rows < n_code), ("align", seg.rows >= n_code)):
            if positions[of_task].any():
                entropy[f"entropy/{task}"] = float(np.asarray(ent)[of_task][positions[of_task]].mean())
        rows_out.append(rows)
    return Scored(rows_out, entropy, diff_sum / diff_count if diff_count else 0.0,
                  [seg.rows for seg in segments], n_code)


def update(run: Run, scored: Scored, step: int) -> tuple[Any, list[dict]]:
    """`updates_per_step` jitted train steps from `run.state`; every segment is split evenly over
    the mini-batches (a stratified shuffle of its rows). Returns the new state and each update's
    metrics."""
    cfg = run.cfg
    strata = [task_strata(seg_rows, scored.n_code) for seg_rows in scored.row_ids]
    orders, salt = [], 99
    for groups in strata:  # each task's rows shuffled on their own: every mini-batch gets its share
        orders.append([])
        for group in groups:
            orders[-1].append(group[np.random.RandomState(step_seed(cfg.seed, step, salt)).permutation(len(group))])
            salt += 1
    state, metrics = run.state, []
    for u in range(cfg.updates_per_step):
        parts = []
        for rows, groups in zip(scored.rows, orders):
            idx = np.concatenate([order[u * (len(order) // cfg.updates_per_step):
                                        (u + 1) * (len(order) // cfg.updates_per_step)] for order in groups])
            if len(idx) and rows["loss_mask"][idx].any():
                parts.append(run.on_devices(pad_rows({k: v[idx] for k, v in rows.items()}, run.row_multiple())))
        if not parts:  # nothing to train in this mini-batch (alignment-only, buffer empty)
            continue
        state, m = run.update_fn(state, tuple(parts), jax.random.key(step))
        metrics.append(jax.device_get(m))
    return state, metrics


def step_metrics(run: Run, batch: StepBatch, scored: Scored, updates: list[dict]) -> dict:
    """The step's row of metrics.jsonl."""
    g = run.cfg.rollout.group_size
    completions, rewards, adv = batch.completions, batch.rewards, batch.advantages
    code_r = batch.code_rewards
    lengths = np.array([len(c.token_ids) for c in completions])
    trained_tokens = sum(int(rows["attn_mask"].sum()) for rows in scored.rows)
    padded_tokens = sum(rows["attn_mask"].size for rows in scored.rows)
    s = batch.seconds
    m = dict(batch.metrics)
    m.update({
        "reward/mean": float(rewards.mean()), "reward/std": float(rewards.std()),
        "reward/code/mean": float(code_r.mean()) if len(code_r) else 0.0,
        "reward/zero_variance_frac": float(zero_variance_fraction(rewards, g)),
        "reward/code/zero_variance_frac": batch.code_zero_variance, "reward/dynamic_rounds": batch.dynamic_rounds,
        "advantage/mean": float(adv.mean()), "advantage/std": float(adv.std()),
        "advantage/max": float(adv.max()), "advantage/min": float(adv.min()),
        "response/length_mean": float(lengths.mean()), "response/length_max": int(lengths.max()),
        "response/clip_ratio": float(np.mean([c.finish_reason == "length" for c in completions])),
        "rollout/sampler_trainer_logprob_diff": scored.sampler_logprob_diff,
        "align/prompts": len(batch.records),
        "time/rollout_s": s["rollout"], "time/reward_s": s["reward"], "time/harvest_s": s["harvest"],
        "time/update_s": s["update"],
        "perf/rollout_tokens_per_s": float(lengths.sum() / max(s["rollout"], 1e-9)),
        "perf/update_tokens_per_s": float(trained_tokens / max(s["update"], 1e-9)),
        "perf/update_padded_frac": 1.0 - trained_tokens / max(padded_tokens, 1),
    })
    m.update(scored.entropy)
    m.update(actor_metrics(updates))
    m["actor/lr"] = float(run.lr_schedule(int(run.state.step)))
    return m


def run_step(run: Run, step: int) -> dict:
    """One training step: `run.state` moves on by `updates_per_step` updates. Returns the step's
    metrics."""
    batch = prompts(run, step)
    batch = rollout(run, batch)
    batch = code_rewards(run, batch)
    batch = harvest(run, batch)
    if run.cfg.rollout.dynamic_sampling and batch.problems:
        batch = keep_groups_with_signal(run, batch)
    batch = alignment_rewards(run, batch)
    batch = advantages(run, batch)
    t0 = time.perf_counter()
    segments = pack(run, batch)
    scored = score(run, batch, segments)
    run.state, updates = update(run, scored, step)
    batch = batch.add(update=time.perf_counter() - t0)
    return step_metrics(run, batch, scored, updates)


# ------------------------------------------------------------------------------------------------
# helpers


def pad_rows(rows: dict, multiple: int) -> dict:
    """Rows padded to a multiple of `multiple` (data-parallel devices, times micro-batches for an
    update) with copies of the first row that train nothing (loss mask off, advantage 0)."""
    extra = -len(rows["tokens"]) % multiple
    if not extra:
        return rows
    pad = {k: np.repeat(v[:1], extra, axis=0) for k, v in rows.items()}
    for k in ("loss_mask", "advantages"):
        if k in pad:
            pad[k] = np.zeros_like(pad[k])
    return {k: np.concatenate([rows[k], pad[k]]) for k in rows}


def response_positions(row_prompts, completions, length: int) -> np.ndarray:
    """bool [B, L]: the predicting positions of every response token, trained or not (the packing
    layout of rl/packing.py: responses start at the column after the longest prompt)."""
    out = np.zeros((len(completions), length), bool)
    start = max(len(p) for p in row_prompts) - 1
    for i, c in enumerate(completions):
        out[i, start:start + len(c.token_ids)] = True
    return out


ACTOR_NAMES = {"loss": "actor/loss", "pg_loss": "actor/pg_loss", "kl_loss": "actor/kl_loss",
               "entropy_loss": "actor/entropy_loss", "grad_norm": "actor/grad_norm", "clipfrac": "actor/clipfrac",
               "clipfrac_high": "actor/clipfrac_high", "clipfrac_low": "actor/clipfrac_low",
               "clipfrac_dual": "actor/clipfrac_dual", "ppo_kl": "actor/ppo_kl",
               "entropy_token_mean": "actor/entropy", "skipped": "actor/skipped"}


def actor_metrics(updates: list[dict]) -> dict:
    """The update metrics averaged over the step's updates (`skipped` summed), under actor/ names;
    `skipped` says whether any update was skipped as non-finite."""
    m: dict = {"actor/updates": len(updates)}
    for key in (updates[0] if updates else {}):
        values = [float(um[key]) for um in updates]
        name = ACTOR_NAMES.get(key, f"actor/{key}")
        m[name] = float(np.sum(values)) if key == "skipped" else float(np.mean(values))
    m["skipped"] = m.get("actor/skipped", 0.0) > 0
    return m
