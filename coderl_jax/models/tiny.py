"""Tiny models built locally: a byte-level tokenizer and random-weight decoders.

No model hub is reachable from our CI or from a fresh laptop install, so demos and tests build
their models here: `byte_tokenizer()` maps UTF-8 bytes to 256 tokens plus a few special tokens
(chat markers and end-of-text), and `make_tiny_model(out_dir)` writes a complete Hugging Face
directory (config.json, model.safetensors, tokenizer files) with random weights.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

from coderl_jax.cache import cache_root

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
    """Write a random tiny model with the byte tokenizer as a Hugging Face directory. `out_dir`
    appears complete or not at all (`save_hf` writes a temporary directory beside it and renames
    it); the tokenizer's scratch directory is private to this call."""
    from coderl_jax.models.hf_io import save_hf
    from coderl_jax.models.transformer import init_params

    tokenizer = byte_tokenizer()
    cfg = tiny_config(family, vocab_size=len(tokenizer), **overrides)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tok_dir = out.parent / f".{out.name}.tokenizer-{uuid.uuid4().hex[:12]}"
    try:
        tokenizer.save_pretrained(tok_dir)
        save_hf(cfg, init_params(cfg, seed), out, tokenizer_dir=tok_dir, local=True)  # each host its own copy
    finally:
        shutil.rmtree(tok_dir, ignore_errors=True)
    return out


DEFAULT_MODEL_NAME = "tiny-random-qwen2"


def default_model_dir() -> Path:
    """The demo model used when no --model is given (the `tiny_cpu` preset's `tiny-random`), created
    once under the user's cache ($CODERL_CACHE, default ~/.cache/coderl_jax).

    Safe when several processes start together on a fresh machine (a multi-process run, parallel
    tests): each builds into its own temporary directory beside the final one and renames it into
    place; a rename onto the finished directory of another process fails, and the loser deletes its
    copy and uses the winner's (every builder writes the same bytes: seed 0). A directory without
    config.json there (a build interrupted before builds were atomic) is moved aside and replaced."""
    root = cache_root()
    path = root / DEFAULT_MODEL_NAME
    if (path / "config.json").exists():
        return path
    root.mkdir(parents=True, exist_ok=True)
    build = root / f".{DEFAULT_MODEL_NAME}.build-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        make_tiny_model(build)
        for _ in range(3):
            if _rename_if_absent(build, path):
                return path
            if (path / "config.json").exists():
                return path  # another process won the race: use its copy
            _move_aside(path, root)  # an incomplete leftover: out of the way, then try again
    finally:
        shutil.rmtree(build, ignore_errors=True)
    raise RuntimeError(f"{path}: could not put the tiny random model in place")


def _rename_if_absent(src: Path, dst: Path) -> bool:
    """Rename directory `src` to `dst` unless `dst` already holds something (an empty `dst` is
    replaced, as rename(2) does). True when `src` is now `dst`."""
    try:
        os.rename(src, dst)
        return True
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            return False
        raise


def _move_aside(path: Path, root: Path) -> None:
    aside = root / f".{path.name}.stale-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # someone else moved it
    shutil.rmtree(aside, ignore_errors=True)
