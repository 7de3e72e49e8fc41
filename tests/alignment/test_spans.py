"""The state-span masks select exactly the tokens of each predicted value, for two tokenizers."""

from __future__ import annotations

import numpy as np
import pytest

from coderl_jax.alignment.answers import parse_answer
from coderl_jax.alignment.spans import make_decode, span_token_mask, token_char_ends, value_masks

RESPONSES = [
    'The loop adds 1, 2 and 3.\n{"final_output": "15", "variables": {"x": 5, "main.total": [1, 2, 3]}}',
    'Step by step: s is reversed.\n\n{"final_output":"hello world","variables":{"s":"abc","n":-12.5}}',
    'ünïcode reasoning ✓ first\n{"final_output": "é", "variables": {"x": {"a": [1, {"b": null}]}}}<|endoftext|>',
]


def reference_mask(tok, text, span):
    """Tokens overlapping the span, from the tokenizer's own offsets of `text` (valid because the
    ids below are exactly tok(text); a trailing special token changes no offset before it)."""
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    s, e = span
    return np.array([a < e and b > s and b > a for a, b in enc["offset_mapping"]])


@pytest.mark.parametrize("which", ["byte_tok", "bpe_tok"])
@pytest.mark.parametrize("response", RESPONSES)
def test_value_masks_match_the_tokenizer_offsets(request, which, response):
    tok = request.getfixturevalue(which)
    ids = tok(response, add_special_tokens=False)["input_ids"]
    decode = make_decode(tok)
    text = decode(ids)
    answer = parse_answer(text)
    assert answer is not None
    out_mask, var_masks, decoded = value_masks(decode, ids, answer)
    assert decoded == text == response.replace("<|endoftext|>", "")
    assert out_mask.tolist() == reference_mask(tok, response, answer.output_span).tolist()
    assert set(var_masks) == set(answer.variable_spans)
    for name, mask in var_masks.items():
        span = answer.variable_spans[name]
        assert mask.tolist() == reference_mask(tok, response, span).tolist()
        covered = decode([i for i, m in zip(ids, mask) if m])
        assert text[span[0]:span[1]] in covered  # the masked tokens carry the whole value
        if which == "byte_tok":  # one token per byte: exactly the value's characters
            assert covered == text[span[0]:span[1]]


def test_masks_of_different_values_are_disjoint_with_bytes(byte_tok):
    ids = byte_tok(RESPONSES[0], add_special_tokens=False)["input_ids"]
    decode = make_decode(byte_tok)
    answer = parse_answer(decode(ids))
    out_mask, var_masks, _ = value_masks(decode, ids, answer)
    stacked = np.stack([out_mask, *var_masks.values()])
    assert stacked.sum(axis=0).max() == 1
    assert stacked.any(axis=0).sum() == len('"15"') + len("5") + len("[1, 2, 3]")


def test_char_ends_survive_partial_utf8(byte_tok):
    text = "é✓a"
    ids = byte_tok(text, add_special_tokens=False)["input_ids"]
    ends, decoded = token_char_ends(make_decode(byte_tok), ids)
    assert decoded == text and ends[-1] == len(text)
    assert np.all(np.diff(ends) >= 0)
    assert span_token_mask(ends, (2, 3)).tolist() == [False] * (len(ids) - 1) + [True]
