"""A small byte-level BPE tokenizer trained locally (no hub), for the warm-started tiny policy.

Same contract as `tiny.byte_tokenizer()`: every string encodes (the 256 byte symbols are always in
the vocabulary, so nothing is unknown) and decodes back exactly; the special tokens are
`tiny.SPECIAL_TOKENS` (`<|endoftext|>` eos, `<|pad|>` pad, `<|im_start|>` / `<|im_end|>` chat
markers) and the chat template is the byte tokenizer's ChatML one. Merges are learnt from the
texts given (the task suite's prompts, reference solutions and alignment answers), with GPT-2's
pre-tokenisation regex, so runs of spaces (indentation) and common words become single tokens.

Ids: 0..255 are the byte symbols (in GPT-2's byte-to-unicode order), then the special tokens,
then the merges, so a vocabulary of 512 has 252 merges.
"""

from __future__ import annotations

import json
from typing import Iterable

from coderl_jax.models.tiny import SPECIAL_TOKENS, _byte_chars

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 1024, *, min_frequency: int = 2):
    """A `transformers.PreTrainedTokenizerFast` with `vocab_size` ids, merges learnt from `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    base = 256 + len(SPECIAL_TOKENS)
    if vocab_size < base:
        raise ValueError(f"vocab_size={vocab_size} is below the {base} byte and special tokens")
    alphabet = _byte_chars()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    # the trainer places special tokens first and the alphabet after them; train the merges, then
    # rebuild the model with the bytes at ids 0..255 and the special tokens right after
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    learnt = tok.get_vocab()
    merged = sorted((t for t in learnt if t not in SPECIAL_TOKENS and t not in set(alphabet)), key=learnt.get)
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab.update({t: 256 + i for i, t in enumerate(SPECIAL_TOKENS)})
    for i, t in enumerate(merged):
        vocab[t] = base + i
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m)
              for m in json.loads(tok.to_str())["model"]["merges"]]
    out = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    out.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    out.decoder = decoders.ByteLevel()
    out.add_special_tokens(SPECIAL_TOKENS)  # already in the vocabulary at 256..: marks them special
    fast = PreTrainedTokenizerFast(
        tokenizer_object=out, eos_token="<|endoftext|>", pad_token="<|pad|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast
