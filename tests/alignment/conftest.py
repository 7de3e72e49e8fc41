from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def byte_tok():
    from coderl_jax.models.tiny import byte_tokenizer

    return byte_tokenizer()


@pytest.fixture(scope="session")
def bpe_tok():
    """A byte-level BPE tokenizer trained here on code-like text: multi-character tokens, merges
    across punctuation, so value spans do not fall on token boundaries."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [
        'x = 5\nprint(x)\n{"final_output": "15", "variables": {"x": 5, "main.total": [1, 2, 3]}}',
        "def main():\n    total = 0\n    for i in range(10):\n        total += i\n    print(total)\n",
        'The answer is {"final_output": "hello world", "variables": {"s": "abc", "n": -12.5}}',
        "reasoning step by step: the loop adds numbers; final values follow.\n" * 3,
    ] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
