"""The alignment task as the training loop sees it: draw prompts, score, credit, harvest.

One `AlignmentTask` lives for a run. Each step the loop asks it for this step's records (drawn
from the buffer that the previous step's harvest filled), rolls them out G times beside the code
prompts, and hands the completions back for rewards and (optionally) per-token credit; after the
code rewards it harvests the failed code rollouts into the buffer for the next step.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from coderl_jax.alignment.answers import Answer, parse_answer
from coderl_jax.alignment.buffer import AlignmentBuffer
from coderl_jax.alignment.config import AlignmentConfig
from coderl_jax.alignment.harvest import harvest
from coderl_jax.alignment.likelihood import masked_mean_loglik, teacher_forced
from coderl_jax.alignment.prompts import alignment_prompt
from coderl_jax.alignment.records import AlignmentRecord
from coderl_jax.alignment.rewards import AlignmentScore, score_answer
from coderl_jax.alignment.spans import make_decode, value_masks


def _rng(seed: int, step: int, salt: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, step, salt]))


@dataclasses.dataclass
class Scored:
    """The alignment rows of one step: per row its record, decoded text, parsed answer and score."""

    records: list[AlignmentRecord]
    answers: list[Answer | None]
    scores: list[AlignmentScore]
    rewards: np.ndarray  # [rows]


class AlignmentTask:
    def __init__(self, cfg: AlignmentConfig, tokenizer, *, prompts_per_step: int, group_size: int, seed: int,
                 encode_prompts: Callable[[list[str]], list[list[int]]], max_prompt_tokens: int):
        cfg.validate()
        self.cfg, self.tokenizer, self.group_size, self.seed = cfg, tokenizer, group_size, seed
        self.n_code, self.n_align = cfg.split(prompts_per_step)
        self.min_records = cfg.min_records or self.n_align
        self.buffer = AlignmentBuffer(cfg.buffer_size, cfg.buffer_strategy)
        self.encode_prompts = encode_prompts
        self.max_prompt_tokens = max_prompt_tokens
        self.decode = make_decode(tokenizer)
        self.special_ids = frozenset(int(i) for i in getattr(tokenizer, "all_special_ids", []) or [])

    @property
    def enabled(self) -> bool:
        return self.cfg.mode != "off"

    # --- prompts ---------------------------------------------------------------------------------
    def records_for_step(self, step: int) -> list[AlignmentRecord]:
        """This step's alignment prompts ([] until the buffer holds enough records)."""
        if not self.enabled or self.n_align == 0 or not self.buffer.ready(self.min_records):
            return []
        return self.buffer.sample(self.n_align, _rng(self.seed, step, 11))

    def prompt_ids(self, records: Sequence[AlignmentRecord]) -> list[list[int]]:
        return self.encode_prompts([alignment_prompt(r, self.cfg.prompt) for r in records]) if records else []

    def prompt_fits(self, record: AlignmentRecord) -> bool:
        ids = self.encode_prompts([alignment_prompt(record, self.cfg.prompt)])[0]
        return len(ids) < self.max_prompt_tokens  # encode_prompts keeps the last max tokens: equal may be cut

    # --- rewards -----------------------------------------------------------------------------------
    def score(self, records: Sequence[AlignmentRecord], completions: Sequence) -> Scored:
        """Text rewards of the rows (G consecutive rows per record)."""
        rows = [r for r in records for _ in range(self.group_size)]
        answers, scores = [], []
        for record, c in zip(rows, completions):
            answer = parse_answer(self.decode(c.token_ids))
            answers.append(answer)
            scores.append(score_answer(record, answer, self.cfg.reward))
        return Scored(rows, answers, scores, np.array([s.reward for s in scores], np.float32))

    def teacher_forced_rows(self, scored: Scored, completions: Sequence) -> tuple[list[list[int]], list[np.ndarray]]:
        """Per row: the response with the true answer line teacher-forced, and its value-token mask."""
        encode = lambda text: self.tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
        ids, masks = [], []
        for record, answer, c in zip(scored.records, scored.answers, completions):
            resp, mask = teacher_forced(record, c.token_ids, answer, decode=self.decode, encode=encode,
                                        special_ids=self.special_ids)
            ids.append(resp)
            masks.append(mask)
        return ids, masks

    def likelihood(self, loglik_fn, prompt_rows: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                   masks: Sequence[np.ndarray]) -> np.ndarray:
        """Mean log-probability of the masked (value) tokens of each row, batched through `loglik_fn`
        (params already bound: batch dict -> logprobs [B, L])."""
        from coderl_jax.rl.packing import pack_rollouts  # noqa: PLC0415

        prompt_len = max(len(p) for p in prompt_rows)
        need = prompt_len + max(len(r) for r in responses)
        length = -(-need // 64) * 64  # bucketed: few distinct compiled shapes
        batch = pack_rollouts(prompt_rows, responses, length=length, pad_id=self._pad_id(),
                              response_loss_mask=masks)
        logp = loglik_fn(batch)
        mean_b, _ = masked_mean_loglik(logp, batch["loss_mask"])
        return np.asarray(mean_b, np.float32)

    def _pad_id(self) -> int:
        pad = getattr(self.tokenizer, "pad_token_id", None)
        return int(pad if pad is not None else getattr(self.tokenizer, "eos_token_id", 0) or 0)

    # --- per-variable credit -----------------------------------------------------------------------
    def token_advantages(self, scored: Scored, completions: Sequence, sample_adv: np.ndarray,
                         estimator: str = "grpo") -> list[np.ndarray]:
        """Per row, one advantage per response token: the sample's advantage, except on the tokens
        of each predicted value (the final output and every target variable), which carry that
        item's own advantage: its correctness (0/1) normalised across the group like a reward."""
        from coderl_jax.rl import compute_advantages  # noqa: PLC0415

        g = self.group_size
        items = np.array([s.items for s in scored.scores], np.float32)  # [rows, 1 + K] per group
        out = []
        for start in range(0, len(scored.records), g):
            record = scored.records[start]
            item_adv = np.stack([np.asarray(compute_advantages(items[start:start + g, j], g, estimator), np.float32)
                                 for j in range(1 + record.k)], axis=1)  # [G, 1 + K]
            for i in range(start, start + g):
                ids = completions[i].token_ids
                adv = np.full(len(ids), sample_adv[i], np.float32)
                answer = scored.answers[i]
                if answer is not None:
                    out_mask, var_masks, _ = value_masks(self.decode, ids, answer)
                    adv[out_mask] = item_adv[i - start, 0]
                    for j, name in enumerate(record.target_names):
                        if name in var_masks:
                            adv[var_masks[name]] = item_adv[i - start, 1 + j]
                out.append(adv)
        return out

    # --- harvest -------------------------------------------------------------------------------------
    def harvest(self, tracer, problems: Sequence, texts: Sequence[str], rewards: Sequence[float], step: int) -> dict:
        """Trace the failed code rollouts of `step` into the buffer; returns harvest metrics."""
        if not self.enabled:
            return {}
        records, counts = harvest(tracer, problems, texts, rewards, k=self.cfg.k, targets=self.cfg.targets,
                                  step=step, rng=_rng(self.seed, step, 12), timeout_s=self.cfg.harvest_timeout_s,
                                  check_determinism=self.cfg.check_determinism,
                                  max_value_chars=self.cfg.max_value_chars,
                                  max_output_chars=self.cfg.max_output_chars, harvest_calls=self.cfg.harvest_calls,
                                  record_input=self.cfg.record_input, prompt_fits=self.prompt_fits)
        self.buffer.add(records)
        m = {f"harvest/{k}" if k in ("considered", "harvested") else f"harvest/dropped_{k}": float(v)
             for k, v in counts.items()}
        m["align/buffer_size"] = float(len(self.buffer))
        return m

    # --- state -------------------------------------------------------------------------------------
    def state(self) -> dict:
        return self.buffer.state()

    def restore(self, state: dict | None) -> None:
        if state is not None:
            self.buffer.restore(state)


def alignment_metrics(scored: Scored, completions: Sequence, rewards: np.ndarray, group_size: int) -> dict:
    """The alignment rows' metrics. `reward/align/group_std` is the mean over groups of the
    rewards' standard deviation within a group (what GRPO's advantage divides by; 0 where every
    sample of a prompt earns the same), `reward/align/zero_variance_frac` the share of such groups."""
    lengths = np.array([len(c.token_ids) for c in completions], np.float32)
    groups = np.asarray(rewards, np.float64).reshape(-1, group_size)
    return {
        "reward/align/mean": float(np.mean(rewards)),
        "reward/align/group_std": float(groups.std(axis=1).mean()),
        "reward/align/zero_variance_frac": float(np.mean(np.all(groups == groups[:, :1], axis=1))),
        "align/accuracy": float(np.mean([s.accuracy for s in scored.scores])),
        "align/exact": float(np.mean([s.exact for s in scored.scores])),
        "align/parsed": float(np.mean([s.parsed for s in scored.scores])),
        "response/align/length_mean": float(lengths.mean()),
    }
