"""Alignment rewards: how well a parsed answer predicts the traced truth.

Items: the final output counts as one item, each target variable as one more (1 + K items).

    official    0 without a valid answer line; else 0.1 + 0.9 * correct / (1 + K)
                (the official code; lenient equality: None ~ "null", True ~ 1, numbers within 1e-9,
                lists / dicts recursively, else str())
    fraction    0 without a valid answer; else correct / (1 + K)  (the paper's plain fraction)
    strict      1 when every item is exactly right, else 0: the output text equal after stripping
                trailing whitespace, each value equal to the truth's JSON form with equal types
                (1 is not 1.0 or True)
    likelihood  the mean log-probability of the true values teacher-forced after the sampled
                reasoning (computed in JAX by likelihood.py); items are scored leniently for metrics

A prediction is data parsed from JSON; nothing is executed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tracer.compare import compare_value, lenient_equal

from coderl_jax.alignment.answers import Answer
from coderl_jax.alignment.prompts import true_output_text
from coderl_jax.alignment.records import AlignmentRecord

VARIANTS = ("official", "fraction", "strict", "likelihood")


@dataclasses.dataclass(frozen=True)
class AlignmentScore:
    reward: float
    items: tuple[bool, ...]  # final output first, then the targets in record order
    parsed: bool

    @property
    def accuracy(self) -> float:
        return sum(self.items) / len(self.items) if self.items else 0.0

    @property
    def exact(self) -> bool:
        return self.parsed and all(self.items)


def _strict_json_equal(pred: Any, true: Any) -> bool:
    if type(pred) is not type(true):
        return False
    if type(pred) is list:
        return len(pred) == len(true) and all(_strict_json_equal(p, q) for p, q in zip(pred, true))
    if type(pred) is dict:
        return pred.keys() == true.keys() and all(_strict_json_equal(pred[k], true[k]) for k in true)
    return pred == true


def item_correctness(record: AlignmentRecord, answer: Answer | None, *, strict: bool = False) -> tuple[bool, ...]:
    if answer is None:
        return (False,) * (1 + record.k)
    truth = true_output_text(record)
    pred_out = answer.final_output
    if strict:
        items = [type(pred_out) is str and pred_out.rstrip() == truth.rstrip()]
    else:
        items = [lenient_equal(pred_out, truth)]
    for t in record.targets:
        if t["name"] not in answer.variables:
            items.append(False)
            continue
        pred = answer.variables[t["name"]]
        items.append(_strict_json_equal(pred, t["json"]) if strict else compare_value(pred, t["value"], mode="lenient"))
    return tuple(bool(x) for x in items)


def score_answer(record: AlignmentRecord, answer: Answer | None, variant: str = "official") -> AlignmentScore:
    if variant not in VARIANTS:
        raise ValueError(f"alignment.reward must be one of {VARIANTS}, got {variant!r}")
    items = item_correctness(record, answer, strict=variant == "strict")
    n = len(items)
    if answer is None:
        reward = 0.0
    elif variant == "official":
        reward = 0.1 + 0.9 * sum(items) / n
    elif variant == "fraction":
        reward = sum(items) / n
    elif variant == "strict":
        reward = float(all(items))
    else:  # likelihood: filled in by the caller from the teacher-forced log-likelihood
        reward = 0.0
    return AlignmentScore(reward=float(reward), items=items, parsed=answer is not None)
