"""State-span token masks: which tokens of a response carry each predicted value.

The answer's values are located as character spans (answers.py); here characters are mapped to
tokens by decoding: token i covers the characters [len(decode(ids[:i])), len(decode(ids[:i+1])))
of the decoded text. This works for any tokenizer (byte-level BPE, SentencePiece, bytes) without
relying on offset mappings, which sampled token sequences do not have. Only the tail of the
response holding the answer line is decoded token by token, so the cost is quadratic in the
answer line's length, not the response's.

A token is in a value's mask when its characters overlap the value's span; a token that merges
a value with neighbouring punctuation (`5,`) therefore counts as part of the value.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

Decode = Callable[[Sequence[int]], str]


def make_decode(tokenizer) -> Decode:
    """The decode used everywhere in alignment: special tokens (EOS, chat markers) dropped."""
    return lambda ids: tokenizer.decode(list(ids), skip_special_tokens=True)


def token_char_ends(decode: Decode, ids: Sequence[int], *, from_char: int = 0) -> tuple[np.ndarray, str]:
    """(ends[i] = characters of decode(ids[:i+1]), text = decode(ids)); only tokens whose end lies
    past `from_char` are resolved exactly, earlier ones are set to their lower bound."""
    text = decode(ids)
    n = len(ids)
    ends = np.zeros(n, np.int64)
    # find a start token j whose prefix decodes to a prefix of the text ending at or before from_char
    j = n
    while j > 0:
        j = max(0, j - max(8, (n - j)))  # widen the tail geometrically
        prefix = decode(ids[:j])
        if text.startswith(prefix) and len(prefix) <= from_char:
            break
    else:
        prefix = ""
    base = len(prefix) if j > 0 else 0
    if j > 0:
        ends[:j] = base  # not resolved: all before the answer
    for i in range(j, n):
        piece = decode(ids[:i + 1]) if i + 1 < n else text
        ends[i] = len(piece) if text.startswith(piece) else ends[i - 1] if i else 0
    np.maximum.accumulate(ends, out=ends)
    return ends, text


def span_token_mask(ends: np.ndarray, span: tuple[int, int]) -> np.ndarray:
    """bool [n]: tokens whose characters overlap [span[0], span[1]). A token that decodes to no
    complete character (the first bytes of a multi-byte character) belongs to the character
    that the following tokens complete."""
    starts = np.concatenate([[0], ends[:-1]])
    ends = np.where(ends > starts, ends, starts + 1)
    s, e = span
    return (starts < e) & (ends > s)


def value_masks(decode: Decode, ids: Sequence[int], answer) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """(output_mask [n], {variable: mask [n]}, decoded text) for a parsed `answer` whose spans refer
    to decode(ids)."""
    ends, text = token_char_ends(decode, ids, from_char=answer.line_start)
    out = span_token_mask(ends, answer.output_span)
    return out, {name: span_token_mask(ends, span) for name, span in answer.variable_spans.items()}, text
