"""Model configuration: one frozen dataclass for the Qwen2/2.5, Qwen3 and Llama 3.x families.

`ModelConfig` is hashable so it can be a static argument of jitted functions. It is built from a
Hugging Face `config.json` (`from_hf`) and written back (`to_hf`); every field that the decoder
needs is validated here, and a bad or unsupported value raises `ConfigError` naming the file and
the field.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax.numpy as jnp

from coderl_jax.errors import UserError

# architecture name -> family; the family decides the defaults of the fields below.
ARCHITECTURES = {
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "LlamaForCausalLM": "llama",
}
MODEL_TYPES = {"qwen2": "qwen2", "qwen3": "qwen3", "llama": "llama"}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
ATTENTION_KERNELS = ("auto", "xla")  # `attention` values: see models/blocked_attention.py


class ConfigError(UserError, ValueError):
    """A config.json that cannot describe a model we support; the message names file and field."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    family: str  # "qwen2" | "qwen3" | "llama"
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float = 10000.0
    # ("llama3", factor, low_freq_factor, high_freq_factor, original_max_position_embeddings) or None
    rope_scaling: tuple | None = None
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    attention_bias: bool = False  # bias on q/k/v projections (Qwen2 family: True)
    qk_norm: bool = False  # RMSNorm on q and k per head (Qwen3)
    max_position_embeddings: int = 32768
    param_dtype: str = "float32"
    dtype: str = "float32"  # compute dtype of activations and matmuls
    # the no-cache attention kernel (training, scoring): "auto" = blocked where the backend has one
    # (splash on TPU, cuDNN on GPU; see models/blocked_attention.py), "xla" = the plain XLA kernel
    attention: str = "auto"
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None

    def __post_init__(self):
        if self.family not in MODEL_TYPES:
            raise ConfigError(f"unsupported model family {self.family!r}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"num_attention_heads={self.num_heads} is not a multiple of "
                f"num_key_value_heads={self.num_kv_heads}"
            )
        if self.attention not in ATTENTION_KERNELS:
            raise ConfigError(f"attention={self.attention!r}: expected 'auto' or 'xla'")
        for name in ("param_dtype", "dtype"):
            if getattr(self, name) not in DTYPES:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected one of {sorted(DTYPES)}")

    @property
    def jnp_dtype(self):
        return DTYPES[self.dtype]

    @property
    def jnp_param_dtype(self):
        return DTYPES[self.param_dtype]

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def num_params(self) -> int:
        h, i, v, d = self.hidden_size, self.intermediate_size, self.vocab_size, self.head_dim
        q, kv = self.num_heads * d, self.num_kv_heads * d
        attn = h * q + 2 * h * kv + q * h + (q + 2 * kv if self.attention_bias else 0)
        attn += 2 * d if self.qk_norm else 0
        layer = attn + 3 * h * i + 2 * h
        head = 0 if self.tie_word_embeddings else v * h
        return v * h + self.num_layers * layer + h + head

    # ----------------------------------------------------------------------------------------
    @classmethod
    def from_hf(cls, hf: dict[str, Any], *, source: str = "config.json", **overrides) -> "ModelConfig":
        """Build from a Hugging Face config dict. `source` names the file in error messages."""

        def need(key):
            if key not in hf or hf[key] is None:
                raise ConfigError(f"{source}: missing required field {key!r}")
            return hf[key]

        def integer(key, value):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{source}: field {key!r} must be a positive integer, got {value!r}")
            return value

        archs = hf.get("architectures") or []
        family = None
        for arch in archs:
            family = ARCHITECTURES.get(arch)
            if family:
                break
        if family is None:
            family = MODEL_TYPES.get(hf.get("model_type", ""))
        if family is None:
            raise ConfigError(
                f"{source}: unsupported architecture (architectures={archs!r}, "
                f"model_type={hf.get('model_type')!r}); supported: {sorted(ARCHITECTURES)}"
            )
        if hf.get("hidden_act", "silu") != "silu":
            raise ConfigError(f"{source}: field 'hidden_act'={hf['hidden_act']!r} unsupported (only 'silu')")
        if hf.get("use_sliding_window"):
            raise ConfigError(f"{source}: field 'use_sliding_window'=true is not supported")
        if hf.get("mlp_bias"):
            raise ConfigError(f"{source}: field 'mlp_bias'=true is not supported")

        hidden = integer("hidden_size", need("hidden_size"))
        heads = integer("num_attention_heads", need("num_attention_heads"))
        kv_heads = integer("num_key_value_heads", hf.get("num_key_value_heads") or heads)
        head_dim = hf.get("head_dim") or hidden // heads
        integer("head_dim", head_dim)
        if "head_dim" not in hf and hidden % heads:
            raise ConfigError(f"{source}: hidden_size={hidden} not divisible by num_attention_heads={heads}")

        # RoPE: transformers >= 5 writes `rope_parameters`; older files `rope_theta` + `rope_scaling`.
        rope = dict(hf.get("rope_parameters") or {})
        scaling = hf.get("rope_scaling") or {}
        theta = rope.get("rope_theta", hf.get("rope_theta", scaling.get("rope_theta", 10000.0)))
        rope_type = rope.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
        params = {**scaling, **rope}
        rope_scaling = None
        if rope_type == "llama3":
            try:
                rope_scaling = (
                    "llama3",
                    float(params["factor"]),
                    float(params["low_freq_factor"]),
                    float(params["high_freq_factor"]),
                    int(params["original_max_position_embeddings"]),
                )
            except KeyError as e:
                raise ConfigError(f"{source}: rope scaling 'llama3' lacks field {e.args[0]!r}") from None
        elif rope_type != "default":
            raise ConfigError(f"{source}: rope type {rope_type!r} unsupported (default, llama3)")

        eos = hf.get("eos_token_id")
        eos_ids = tuple(eos) if isinstance(eos, list) else ((eos,) if eos is not None else ())
        defaults = {"qwen2": (True, False), "qwen3": (False, True), "llama": (False, False)}[family]
        attention_bias = hf.get("attention_bias", defaults[0])
        if family == "qwen2":
            attention_bias = True  # Qwen2/2.5 always carry q/k/v biases
        tie = hf.get("tie_word_embeddings", False)  # the default of all three HF config classes
        kwargs = dict(
            family=family,
            vocab_size=integer("vocab_size", need("vocab_size")),
            hidden_size=hidden,
            intermediate_size=integer("intermediate_size", need("intermediate_size")),
            num_layers=integer("num_hidden_layers", need("num_hidden_layers")),
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=head_dim,
            rope_theta=float(theta),
            rope_scaling=rope_scaling,
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            tie_word_embeddings=bool(tie),
            attention_bias=bool(attention_bias),
            qk_norm=defaults[1],
            max_position_embeddings=int(hf.get("max_position_embeddings", 32768)),
            bos_token_id=hf.get("bos_token_id"),
            eos_token_ids=eos_ids,
            pad_token_id=hf.get("pad_token_id"),
        )
        kwargs.update(overrides)
        try:
            return cls(**kwargs)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> "ModelConfig":
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        if not path.exists():
            raise ConfigError(f"{path}: file not found")
        try:
            hf = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(hf, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        extra_eos = _generation_eos_ids(path.parent / "generation_config.json")
        if extra_eos and "eos_token_ids" not in overrides:
            cfg = cls.from_hf(hf, source=str(path), **overrides)
            ids = cfg.eos_token_ids + tuple(i for i in extra_eos if i not in cfg.eos_token_ids)
            return dataclasses.replace(cfg, eos_token_ids=ids)
        return cls.from_hf(hf, source=str(path), **overrides)

    def to_hf(self) -> dict[str, Any]:
        """A config.json dict that transformers' AutoConfig (v4 and v5) and vLLM read."""
        arch = {v: k for k, v in ARCHITECTURES.items()}[self.family]
        hf: dict[str, Any] = {
            "architectures": [arch],
            "model_type": self.family,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": self.param_dtype,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": list(self.eos_token_ids) if len(self.eos_token_ids) > 1 else (
                self.eos_token_ids[0] if self.eos_token_ids else None),
            "pad_token_id": self.pad_token_id,
        }
        if self.family != "qwen2":
            hf["attention_bias"] = self.attention_bias
        if self.family == "qwen2":
            hf["use_sliding_window"] = False
        if self.family == "llama":
            hf["mlp_bias"] = False
        if self.rope_scaling is not None:
            _, factor, low, high, orig = self.rope_scaling
            hf["rope_scaling"] = {
                "rope_type": "llama3",
                "factor": factor,
                "low_freq_factor": low,
                "high_freq_factor": high,
                "original_max_position_embeddings": orig,
            }
        return hf


def _generation_eos_ids(path: Path) -> tuple[int, ...]:
    """The end-of-sequence ids a checkpoint's generation_config.json adds. Qwen2.5 ends generation
    on <|im_end|> (config.json) and on <|endoftext|> (generation_config.json only); vLLM and
    transformers stop on both, so the sampler must too."""
    if not path.exists():
        return ()
    try:
        eos = json.loads(path.read_text()).get("eos_token_id")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise ConfigError(f"{path}: not a JSON object ({e})") from None
    ids = eos if isinstance(eos, list) else ([eos] if eos is not None else [])
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ConfigError(f"{path}: eos_token_id must be an integer or a list of integers, got {eos!r}")
    return tuple(ids)
