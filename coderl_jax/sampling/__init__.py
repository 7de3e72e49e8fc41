"""Jitted KV-cache sampling: `Sampler` (text in, completions out) and `generate_tokens` (pure, arrays)."""

from coderl_jax.sampling.sampler import (Completion, DecodeSpec, GenerateOut, Sampler, SamplingParams,
                                         generate_tokens, sample_step)

__all__ = ["Completion", "DecodeSpec", "GenerateOut", "Sampler", "SamplingParams", "generate_tokens", "sample_step"]
