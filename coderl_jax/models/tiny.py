"""Tiny models built locally: a byte-level tokenizer and random-weight decoders.

No model hub is reachable from our CI or from a fresh laptop install, so demos and tests build
their models here: `byte_tokenizer()` maps UTF-8 bytes to 256 tokens plus a few special tokens
(chat markers and end-of-text), and `make_tiny_model(out_dir)` writes a complete Hugging Face
directory (config.json, model.safetensors, tokenizer files) with random weights.
"""

from __future__ import annotations

import os
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def byte_tokenizer():
    """A transformers fast tokenizer over raw bytes: ids 0..255 are bytes, then SPECIAL_TOKENS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: b for b, ch in enumerate(_byte_chars())}  # token id == byte value
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return fast


def _byte_chars() -> list[str]:
    """GPT-2's byte-to-unicode map, indexed by byte: printable bytes map to themselves, the rest
    to chr(256 + i) in byte order (the alphabet of tokenizers' ByteLevel pre-tokenizer)."""
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(ord("¡"), ord("¬") + 1)) | set(
        range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def tiny_config(family: str = "qwen2", vocab_size: int = 260, **overrides):
    from coderl_jax.models.config import ModelConfig

    base = dict(
        family=family, vocab_size=vocab_size, hidden_size=64, intermediate_size=192, num_layers=2,
        num_heads=4, num_kv_heads=2, head_dim=16, max_position_embeddings=2048,
        tie_word_embeddings=family == "qwen2", attention_bias=family == "qwen2",
        qk_norm=family == "qwen3", eos_token_ids=(256,), bos_token_id=None, pad_token_id=259,
    )
    base.update(overrides)
    return ModelConfig(**base)


def make_tiny_model(out_dir: str | os.PathLike, family: str = "qwen2", seed: int = 0, **overrides) -> Path:
    """Write a random tiny model with the byte tokenizer as a Hugging Face directory."""
    from coderl_jax.models.hf_io import save_hf
    from coderl_jax.models.transformer import init_params

    tokenizer = byte_tokenizer()
    cfg = tiny_config(family, vocab_size=len(tokenizer), **overrides)
    out = Path(out_dir)
    tok_dir = out.with_name(out.name + ".tokenizer.tmp")
    tokenizer.save_pretrained(tok_dir)
    save_hf(cfg, init_params(cfg, seed), out, tokenizer_dir=tok_dir)
    for f in tok_dir.iterdir():
        f.unlink()
    tok_dir.rmdir()
    return out


def default_model_dir() -> Path:
    """The demo model used when no --model is given, created once under the user's cache."""
    root = Path(os.environ.get("CODERL_CACHE", Path.home() / ".cache" / "coderl_jax"))
    path = root / "tiny-random-qwen2"
    if not (path / "config.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        make_tiny_model(path)
    return path
