"""Jitted KV-cache sampling: `Sampler` (text in, completions out), `generate_tokens` and
`generate_refill` (pure, arrays)."""

from coderl_jax.sampling.sampler import (Completion, DecodeSpec, GenerateOut, Sampler, SamplingParams,
                                         generate_refill, generate_tokens, sample_step)

__all__ = ["Completion", "DecodeSpec", "GenerateOut", "Sampler", "SamplingParams", "generate_refill",
           "generate_tokens", "sample_step"]
