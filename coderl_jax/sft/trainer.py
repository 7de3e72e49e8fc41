"""Supervised warm start: teach a small policy the answer formats (and some skill) before RL.

Two kinds of examples, mixed in every batch at a fixed ratio (`code_fraction`):

    code   the problem's prompt -> CODE_LEAD_IN + "```python\\n<reference solution>\\n```"
           (the last fenced block is what the code reward runs)
    align  the alignment prompt of the reference solution traced in the sandbox on one of the
           problem's test inputs -> reasoning + "\\n" + the true answer line
           (alignment/prompts.answer_line). The reasoning (`align_reasoning`) is "steps": one line
           per step of the program with the value it leaves, and the partial values of folds, read
           from a per-line trace of the same run (alignment/steps.py); or "fixed": the one sentence
           ALIGN_REASONING (the style of the committed warm starts). A record whose per-line trace
           gives no lines gets the sentence.
    (also in the align slot, opt-in) test-output prediction: the problem statement and one of its
           stdio test inputs, no program (alignment/prompts.test_output_prompt) ->
           TEST_OUTPUT_REASONING + "\\n" + {"final_output": <the expected output>, "variables": {}}
           (the format the ablation's test-output accuracy reads)

Prompts are rendered with the tokenizer's chat template (as the RL loop renders them); every
response ends with `<|im_end|>`, an EOS id of the saved model, so sampling stops after the answer.

The loss is the masked next-token NLL over response tokens only, averaged over all the batch's
response tokens (token-mean). A batch is one [B_kind, L_kind] array set per kind (alignment rows
are about twice as long as code rows, so one shared length would be half padding); rows are
`[prompt][response][right padding]`, packed with `rl.packing.pack_rollouts` one row at a time, and
log-probs come from `rl.train_step.sequence_logprobs`, so the step compiles once and computes
exactly what the RL trainer computes. Optimiser: `rl.train_step.make_optimizer` (AdamW after
global-norm clipping; beta2 0.99) with a warmup + cosine schedule.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from coderl_jax.models.config import ModelConfig
from coderl_jax.rl.packing import pack_rollouts
from coderl_jax.optim import OptimConfig, make_optimizer
from coderl_jax.rl.train_step import TrainState, init_train_state, sequence_logprobs

log = logging.getLogger("coderl_jax.sft")

CODE_LEAD_IN = "Here is a Python program that reads the input and prints the answer.\n"
ALIGN_REASONING = "Running the program on this input step by step gives the following final state."
TEST_OUTPUT_REASONING = "A correct program reads this input and prints the following."
END_TOKEN = "<|im_end|>"
BATCH_KEYS = ("tokens", "positions", "attn_mask", "loss_mask")
KINDS = ("code", "align")


@dataclasses.dataclass(frozen=True)
class SFTExample:
    kind: str  # "code" | "align"
    source: str  # problem id
    prompt: str  # the user message (rendered through the chat template later)
    response: str  # the assistant's text, without the end token


@dataclasses.dataclass(frozen=True)
class SFTConfig:
    """Defaults: the 240-step recipe of docs/sft.md."""

    steps: int = 240
    batch_size: int = 16
    max_len: int = 512  # longest row (prompt + response + end token); longer examples are dropped
    learning_rate: float = 2e-3
    warmup_steps: int = 24
    schedule: str = "cosine"  # constant | warmup_constant | cosine (rl.train_step.learning_rate_schedule)
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    code_fraction: float = 0.75  # share of each batch's rows that are code examples
    # 0: every row of a kind is padded to that kind's longest example (one compiled step). N > 0:
    # each kind's rows are batched with rows of similar length and padded to the batch's longest,
    # rounded up to N tokens (one compiled step per pair of row lengths; less padding)
    length_bucket: int = 0
    seed: int = 0
    log_every: int = 20

    def validate(self) -> "SFTConfig":
        def need(cond, msg):
            if not cond:
                raise ValueError(f"sft: {msg}")

        need(self.steps >= 1, f"steps={self.steps} must be >= 1")
        need(self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1")
        need(self.max_len >= 8, f"max_len={self.max_len} must be >= 8")
        need(self.learning_rate > 0, f"learning_rate={self.learning_rate} must be > 0")
        need(0.0 <= self.code_fraction <= 1.0, f"code_fraction={self.code_fraction} must be in [0, 1]")
        need(self.warmup_steps >= 0, f"warmup_steps={self.warmup_steps} must be >= 0")
        need(self.log_every >= 1, f"log_every={self.log_every} must be >= 1")
        need(self.length_bucket >= 0, f"length_bucket={self.length_bucket} must be >= 0")
        return self

    def optim(self) -> OptimConfig:
        return OptimConfig(learning_rate=self.learning_rate, schedule=self.schedule, warmup_steps=self.warmup_steps,
                           total_steps=self.steps, min_lr_ratio=self.min_lr_ratio, weight_decay=self.weight_decay,
                           b2=0.99, grad_clip=self.grad_clip)


# ------------------------------------------------------------------------------------------------
# Examples


def solution_of(problem) -> str | None:
    sol = (problem.metadata or {}).get("solution")
    return sol if isinstance(sol, str) and sol.strip() else None


def code_response(solution: str) -> str:
    return f"{CODE_LEAD_IN}```python\n{solution.strip(chr(10))}\n```"


def prompt_text(problem) -> str:
    prompt = problem.prompt
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(m["content"] for m in prompt if m["role"] == "user")


def code_examples(problems: Sequence) -> list[SFTExample]:
    """One example per problem that carries `metadata.solution`."""
    return [SFTExample("code", str(p.id), prompt_text(p), code_response(s))
            for p in problems if (s := solution_of(p)) is not None]


def align_response(record, reasoning: str | None = None) -> str:
    """`reasoning` (step lines; None: the fixed sentence ALIGN_REASONING), then the answer line."""
    from coderl_jax.alignment.prompts import answer_line

    return f"{reasoning or ALIGN_REASONING}\n{answer_line(record)}"


def step_reasonings(tracer, records: Sequence, *, steps_cfg=None, timeout_s: float = 5.0
                    ) -> tuple[list[str | None], dict]:
    """Step-level reasoning for each record from a per-line trace in the sandbox (None where the
    trace does not reproduce the record or gives no lines), and counts {"steps", "fixed"}."""
    from coderl_jax.alignment import steps

    cfg = (steps_cfg or steps.StepsConfig()).validate()
    traces = steps.trace_steps(tracer, records, timeout_s=timeout_s, cfg=cfg)
    texts = [steps.reasoning_text(r, t, cfg) for r, t in zip(records, traces)]
    with_steps = sum(t is not None for t in texts)
    return texts, {"steps": with_steps, "fixed": len(texts) - with_steps}


def alignment_records(tracer, problems: Sequence, *, k: int = 3, targets: str = "last", inputs_per_problem: int = 1,
                      seed: int = 0, timeout_s: float = 5.0, record_input: str = "first", max_value_chars: int = 200,
                      max_output_chars: int = 0) -> tuple[list, dict]:
    """Alignment records of the reference solutions, traced in the sandbox on up to
    `inputs_per_problem` of each problem's test inputs (`alignment.harvest.harvest` with reward 0,
    so the same filters apply: errors, silent or nondeterministic programs, duplicates, outputs
    longer than `max_output_chars`, ...): the first ones, or with `record_input="shortest"` the
    shortest ones, shortest first."""
    from coderl_jax.alignment.harvest import harvest
    from coderl_jax.data.records import shortest_first

    views, responses = [], []
    for p in problems:
        sol = solution_of(p)
        if sol is None:
            continue
        tests = p.tests
        if record_input == "shortest" and len(tests.get("inputs") or []) > 1:
            order = shortest_first(tests["inputs"])
            tests = {**tests, "inputs": [tests["inputs"][i] for i in order],
                     "outputs": [tests["outputs"][i] for i in order]}
            p = dataclasses.replace(p, tests=tests)
        n_inputs = len(tests.get("inputs") or [])
        for i in range(min(inputs_per_problem, n_inputs) if n_inputs else 1):
            view = p if i == 0 else dataclasses.replace(
                p, tests={**tests, "inputs": tests["inputs"][i:] + tests["inputs"][:i],
                          "outputs": tests["outputs"][i:] + tests["outputs"][:i]})
            views.append(view)
            responses.append(code_response(sol))
    records, counts = harvest(tracer, views, responses, [0.0] * len(views), k=k, targets=targets,
                              rng=np.random.default_rng(seed), timeout_s=timeout_s, max_value_chars=max_value_chars,
                              max_output_chars=max_output_chars)
    return records, counts


def test_output_examples(problems: Sequence, *, inputs_per_problem: int = 1) -> list[SFTExample]:
    """Test-output prediction examples from stdio problems' own tests (no program is run): for up
    to `inputs_per_problem` of each problem's test cases, the statement and the input -> the
    expected output as the answer line. They share the alignment slot of each batch."""
    import json

    from coderl_jax.alignment.prompts import test_output_prompt

    out = []
    for p in problems:
        tests = p.tests or {}
        if tests.get("style") != "stdio":
            continue
        for stdin, expected in list(zip(tests.get("inputs") or [], tests.get("outputs") or []))[:inputs_per_problem]:
            answer = json.dumps({"final_output": expected.rstrip("\n"), "variables": {}}, ensure_ascii=False)
            out.append(SFTExample("align", str(p.id), test_output_prompt(prompt_text(p), stdin),
                                  f"{TEST_OUTPUT_REASONING}\n{answer}"))
    return out


def align_examples(records: Sequence, reasonings: Sequence[str | None] | None = None) -> list[SFTExample]:
    """One example per record; `reasonings` (from `step_reasonings`) gives each its reasoning."""
    from coderl_jax.alignment.prompts import alignment_prompt

    reasonings = reasonings if reasonings is not None else [None] * len(records)
    if len(reasonings) != len(records):
        raise ValueError(f"sft: {len(reasonings)} reasonings for {len(records)} records")
    return [SFTExample("align", r.source, alignment_prompt(r), align_response(r, t))
            for r, t in zip(records, reasonings)]


# ------------------------------------------------------------------------------------------------
# Tokenising and packing


@dataclasses.dataclass
class Encoded:
    """Token ids of a list of examples; `kinds` [N] holds "code" / "align"."""

    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    kinds: list[str]
    dropped: int = 0  # examples longer than max_len

    def lengths(self) -> np.ndarray:
        return np.array([len(p) + len(r) for p, r in zip(self.prompt_ids, self.response_ids)], np.int64)

    def indices(self, kind: str) -> np.ndarray:
        return np.array([i for i, k in enumerate(self.kinds) if k == kind], np.int64)


def encode_examples(examples: Sequence[SFTExample], tokenizer, *, max_len: int, system: str | None = None) -> Encoded:
    """Render prompts with the chat template, tokenise prompt and response separately (as the
    sampler sees them) and append the end token; examples longer than `max_len` are dropped."""
    from coderl_jax.data.chat import render_prompt

    end_id = tokenizer.convert_tokens_to_ids(END_TOKEN)
    if end_id is None or end_id == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no {END_TOKEN} token")
    out = Encoded([], [], [])
    for ex in examples:
        prompt = list(tokenizer.encode(render_prompt(ex.prompt, tokenizer, system=system), add_special_tokens=False))
        response = list(tokenizer.encode(ex.response, add_special_tokens=False)) + [end_id]
        if len(prompt) + len(response) > max_len:
            out.dropped += 1
            continue
        out.prompt_ids.append(prompt)
        out.response_ids.append(response)
        out.kinds.append(ex.kind)
    return out


def pack_batch(prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], *, length: int,
               pad_id: int) -> dict[str, np.ndarray]:
    """[B, length] arrays: each row `[prompt][response][padding]` (packed one row at a time, so a
    long prompt in one row does not push the other rows' responses right)."""
    rows = [pack_rollouts([p], [r], length=length, pad_id=pad_id) for p, r in zip(prompt_ids, response_ids)]
    return {k: np.concatenate([row[k] for row in rows]) for k in BATCH_KEYS}


BUCKET_WINDOW = 32  # batches whose rows are sorted by length together (length_bucket > 0)


def batch_indices(enc: Encoded, cfg: SFTConfig) -> Iterator[dict[str, np.ndarray]]:
    """Row indices per step, by kind: round(batch * code_fraction) code rows and the rest alignment
    rows (all code when there are no alignment examples), each kind drawn in seeded shuffled epochs.
    Kinds with no rows in a batch are left out. With `length_bucket`, each epoch's order is cut
    into windows of BUCKET_WINDOW batches; a window is sorted by length, cut into batches, and its
    batches shuffled, so a batch holds rows of similar length; an epoch then sees every row but at
    most batch - 1 of them (left for a later epoch), so that batches do not straddle epochs."""
    rng = np.random.default_rng(cfg.seed)
    lengths = enc.lengths()
    pools = {k: enc.indices(k) for k in KINDS}
    n_code = int(round(cfg.batch_size * cfg.code_fraction))
    if not len(pools["align"]):
        n_code = cfg.batch_size
    if not len(pools["code"]):
        n_code = 0
    want = {"code": n_code, "align": cfg.batch_size - n_code}
    for kind, n in want.items():
        if n and not len(pools[kind]):
            raise ValueError(f"sft: no {kind} examples to draw {n} rows per batch from")
    queues: dict[str, list[int]] = {k: [] for k in KINDS}

    def epoch(kind: str, n: int) -> list[int]:
        order = rng.permutation(pools[kind])
        if not cfg.length_bucket:
            return list(order)
        if len(order) >= n:  # whole batches only (the rest waits for a later epoch), so batches stay aligned
            order = order[:len(order) - len(order) % n]
        batches = []
        for w in range(0, len(order), n * BUCKET_WINDOW):
            window = order[w:w + n * BUCKET_WINDOW]
            window = window[np.argsort(lengths[window], kind="stable")]
            batches += [window[b:b + n] for b in rng.permutation(range(0, len(window), n))]
        return [int(i) for i in np.concatenate(batches)[::-1]]  # popped from the end

    def take(kind: str, n: int) -> np.ndarray:
        out = []
        while len(out) < n:
            if not queues[kind]:
                queues[kind] = epoch(kind, n)
            out.append(queues[kind].pop())
        return np.array(out, np.int64)

    while True:
        yield {kind: take(kind, n) for kind, n in want.items() if n}


# ------------------------------------------------------------------------------------------------
# The loss and the step


def nll_sum(params, model_cfg: ModelConfig, batch: dict):
    """(summed NLL of the loss-masked tokens, their number) of one [B, L] batch."""
    logp_bl, _ = sequence_logprobs(params, model_cfg, batch)
    mask_bl = batch["loss_mask"].astype(jnp.float32)
    return -jnp.sum(logp_bl * mask_bl), jnp.sum(mask_bl)


def sft_loss(params, model_cfg: ModelConfig, parts: dict[str, dict]):
    """Token-mean NLL over the response tokens of every part (parts have their own row lengths:
    code rows are shorter than alignment rows), and per part {"loss/<kind>", "tokens/<kind>"}."""
    total, count, aux = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32), {}
    for kind, batch in parts.items():
        s, n = nll_sum(params, model_cfg, batch)
        total, count = total + s, count + n
        aux[f"loss/{kind}"], aux[f"tokens/{kind}"] = s / jnp.maximum(n, 1.0), n
    return total / jnp.maximum(count, 1.0), aux


def sft_step(state: TrainState, parts: dict[str, dict], *, model_cfg: ModelConfig, optimizer):
    (loss, aux), grads = jax.value_and_grad(sft_loss, has_aux=True)(state.params, model_cfg, parts)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(state.step + 1, params, opt_state), {"loss": loss, "grad_norm": grad_norm, **aux}


def make_sft_step(model_cfg: ModelConfig, optimizer):
    """The jitted step (state donated): (state, {kind: batch}) -> (state, metrics)."""
    return jax.jit(functools.partial(sft_step, model_cfg=model_cfg, optimizer=optimizer), donate_argnums=(0,))


def row_length(enc: Encoded, max_len: int, kind: str | None = None, multiple: int = 16) -> int:
    """The static row length: the longest example (of `kind`) rounded up to `multiple`, at most max_len."""
    lengths = enc.lengths() if kind is None else enc.lengths()[enc.indices(kind)]
    longest = int(lengths.max()) if len(lengths) else 1
    return min(max_len, -(-longest // multiple) * multiple)


def train_sft(model_cfg: ModelConfig, params, enc: Encoded, cfg: SFTConfig, *, pad_id: int,
              on_log: Callable[[dict], None] | None = None, progress: bool = True,
              eval_every: int = 0, on_eval: Callable[[int, Any], dict] | None = None) -> tuple[Any, list[dict]]:
    """Train for `cfg.steps` steps; returns (params, logged metrics: one dict per `log_every` steps,
    with the mean loss (overall and per kind) over those steps, real (unpadded) tokens/s, the fill
    (real tokens / row slots) and the learning rate).

    With `eval_every` and `on_eval(step, params) -> metrics`, the metrics of every `eval_every`-th
    step join that step's log record (`eval_every` must be a multiple of `log_every`); the time
    spent evaluating is left out of tokens/s."""
    from tqdm import tqdm

    from coderl_jax.optim import learning_rate_schedule

    cfg.validate()
    if not enc.prompt_ids:
        raise ValueError("sft: no examples to train on")
    if eval_every and (on_eval is None or eval_every % cfg.log_every):
        raise ValueError(f"sft: eval_every={eval_every} needs on_eval and a multiple of log_every={cfg.log_every}")
    optim = cfg.optim()
    optimizer = make_optimizer(optim)
    schedule = learning_rate_schedule(optim)
    step_fn = make_sft_step(model_cfg, optimizer)
    state = init_train_state(params, optimizer)
    longest = {kind: row_length(enc, cfg.max_len, kind) for kind in KINDS}
    example_lengths = enc.lengths()
    history, window = [], []
    batches = batch_indices(enc, cfg)
    t_start = t_window = time.perf_counter()
    eval_s = 0.0  # time spent in on_eval, left out of elapsed_s and tokens/s
    tokens_window = slots_window = 0
    row_slots: dict[str, int] = {}  # summed row length per kind over the log window
    bar = tqdm(total=cfg.steps, desc="sft", disable=not progress, dynamic_ncols=True)
    for step in range(1, cfg.steps + 1):
        drawn = next(batches)
        lengths = {kind: longest[kind] if not cfg.length_bucket else
                   min(longest[kind], -(-int(example_lengths[idx].max()) // cfg.length_bucket) * cfg.length_bucket)
                   for kind, idx in drawn.items()}
        parts = {kind: pack_batch([enc.prompt_ids[i] for i in idx], [enc.response_ids[i] for i in idx],
                                  length=lengths[kind], pad_id=pad_id) for kind, idx in drawn.items()}
        for kind in lengths:
            row_slots[kind] = row_slots.get(kind, 0) + lengths[kind]
        tokens_window += sum(int(b["attn_mask"].sum()) for b in parts.values())
        slots_window += sum(b["attn_mask"].size for b in parts.values())
        state, metrics = step_fn(state, parts)
        window.append(metrics)
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            host = jax.device_get(window)
            now = time.perf_counter()
            rec = {"step": step, **{k: float(np.mean([m[k] for m in host])) for k in host[0]
                                    if not k.startswith("tokens/")},
                   "lr": float(schedule(step - 1)), "tokens_per_s": tokens_window / max(now - t_window, 1e-9),
                   "tokens": tokens_window, "fill": tokens_window / max(slots_window, 1),
                   "elapsed_s": now - t_start - eval_s,
                   "row_lengths": {k: v / len(window) for k, v in row_slots.items()}}  # mean over the window
            if eval_every and (step % eval_every == 0 or step == cfg.steps):
                rec.update(on_eval(step, state.params))
                eval_s += time.perf_counter() - now
                now = time.perf_counter()
            history.append(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", tok_s=f"{rec['tokens_per_s']:.0f}")
            if on_log is not None:
                on_log(rec)
            window, tokens_window, slots_window, t_window, row_slots = [], 0, 0, now, {}
    bar.close()
    return state.params, history


# ------------------------------------------------------------------------------------------------
# The model


def sft_model_config(tokenizer, *, hidden_size: int = 256, num_layers: int = 4, num_heads: int = 4,
                     num_kv_heads: int = 2, intermediate_size: int = 704, max_position_embeddings: int = 2048,
                     **overrides) -> ModelConfig:
    """A small Qwen2 config (tied embeddings, q/k/v biases) sized to `tokenizer`; EOS ids are
    `<|im_end|>` (where chat answers stop) and `<|endoftext|>`."""
    end_id = tokenizer.convert_tokens_to_ids(END_TOKEN)
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size={hidden_size} is not divisible by num_heads={num_heads}")
    base = dict(family="qwen2", vocab_size=len(tokenizer), hidden_size=hidden_size,
                intermediate_size=intermediate_size, num_layers=num_layers, num_heads=num_heads,
                num_kv_heads=num_kv_heads, head_dim=hidden_size // num_heads,
                max_position_embeddings=max_position_embeddings, tie_word_embeddings=True, attention_bias=True,
                eos_token_ids=(int(end_id), int(tokenizer.eos_token_id)), bos_token_id=None,
                pad_token_id=int(tokenizer.pad_token_id))
    base.update(overrides)
    return ModelConfig(**base)
