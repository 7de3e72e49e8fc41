"""The dense likelihood signal: log-probability of the true values, teacher-forced, masked.

For an alignment rollout, the sampled reasoning is kept and the *true* answer line (the traced
output and values) is appended in place of the sampled one; the mean log-probability of the
answer's value tokens under the current policy is the sample's likelihood reward. The probe uses
the same construction with no reasoning (the true answer right after the prompt).

The token masks are built here on the host; the log-probabilities come from the trainer's jitted
log-prob function and `masked_mean_loglik` reduces them in JAX.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from coderl_jax.alignment.answers import Answer, object_spans
from coderl_jax.alignment.prompts import answer_line
from coderl_jax.alignment.records import AlignmentRecord
from coderl_jax.alignment.spans import Decode, span_token_mask, token_char_ends


@jax.jit
def masked_mean_loglik(logp_bl: jax.Array, mask_bl: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per row: (mean of logp over the masked positions (0 where none), number of masked positions)."""
    m = mask_bl.astype(jnp.float32)
    count_b = m.sum(axis=1)
    return (logp_bl * m).sum(axis=1) / jnp.maximum(count_b, 1.0), count_b


def answer_value_spans(line: str, offset: int = 0) -> list[tuple[int, int]]:
    """Character spans of the final output and of every variable value in an answer line."""
    top, _ = object_spans(line, 0)
    variables, _ = object_spans(line, top["variables"][0])
    return [(s + offset, e + offset) for s, e in [top["final_output"], *variables.values()]]


def teacher_forced(record: AlignmentRecord, response_ids: Sequence[int], answer: Answer | None, *,
                   decode: Decode, encode, special_ids: frozenset[int] = frozenset()) -> tuple[list[int], np.ndarray]:
    """(response tokens = sampled reasoning + true answer line, value-token mask over them).

    With a parsed answer the reasoning is every token that ends before the answer line; without
    one it is the whole response (a newline is added before the true line when needed).
    """
    ids = [int(t) for t in response_ids if int(t) not in special_ids]
    text = decode(ids)
    if answer is not None:
        ends, text = token_char_ends(decode, ids, from_char=answer.line_start)
        keep = int(np.searchsorted(ends, answer.line_start, side="right"))  # tokens ending at or before it
        reasoning = ids[:keep]
        carry = text[int(ends[keep - 1]) if keep else 0:answer.line_start]
    else:
        reasoning = ids
        carry = "\n" if text and not text.endswith("\n") else ""
    line = answer_line(record)
    continuation = carry + line
    cont_ids = list(encode(continuation))
    cont_ends, cont_text = token_char_ends(decode, cont_ids)
    offset = cont_text.find(line)  # == len(carry) unless the tokenizer normalises the carry
    mask = np.zeros(len(cont_ids), bool)
    if offset >= 0:
        for span in answer_value_spans(line, offset):
            mask |= span_token_mask(cont_ends, span)
    return reasoning + cont_ids, np.concatenate([np.zeros(len(reasoning), bool), mask])
