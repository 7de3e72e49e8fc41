"""Where responses come from: the policy (`SamplerGenerator`) or the references (`OracleGenerator`).

A generator has `identity` (a JSON-able dict recorded with the results, and checked on resume),
`prompt_text(item, settings)` and `generate(items, settings, seed, *, batch_size=None) ->
[[Sample, ...] per item]`; `batch_size` is the size every chunk of the run is padded to, so that a
jitted sampler compiles once.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Sequence

from coderl_jax.eval.benchmarks import EvalItem

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Sample:
    text: str
    finish_reason: str  # "eos" | "stop" | "length" | "prompt_too_long" | "reference"
    num_tokens: int = 0


class OracleGenerator:
    """Answers every item with its reference (`EvalItem.canonical`): a check of the harness."""

    identity = {"oracle": "canonical"}

    def prompt_text(self, item: EvalItem, settings) -> str:
        return ""

    def generate(self, items: Sequence[EvalItem], settings, seed: int, *, batch_size: int | None = None
                 ) -> list[list[Sample]]:
        out = []
        for item in items:
            if item.canonical is None:
                raise ValueError(f"{item.benchmark}: item {item.id!r} has no reference solution")
            out.append([Sample(item.canonical, "reference")] * settings.n)
        return out


class SamplerGenerator:
    """Responses sampled from a `coderl_jax.sampling.sampler.Sampler`.

    The training loop passes its own sampler (whose params getter follows the policy); `coderl
    eval` builds one with `load_model`. Prompts are rendered with the tokenizer's chat template
    (`coderl_jax.data.chat.render_prompt`) or, with settings.raw_prompt, are the items'
    completion-style prompts. A prompt whose tokens plus max_new_tokens exceed the context is not
    generated: its samples are empty with finish_reason "prompt_too_long" (scored as failures).
    """

    def __init__(self, sampler, tokenizer, *, identity: dict | None = None):
        self.sampler, self.tokenizer = sampler, tokenizer
        self.identity = dict(identity or {"model": "<sampler>"})

    def prompt_text(self, item: EvalItem, settings) -> str:
        from coderl_jax.data.chat import render_prompt

        if settings.raw_prompt:
            return item.raw_prompt if settings.system is None else f"{settings.system}\n\n{item.raw_prompt}"
        return render_prompt(item.prompt, self.tokenizer, system=settings.system)

    def encode(self, item: EvalItem, settings) -> list[int]:
        text = self.prompt_text(item, settings)
        # a chat template writes its own special tokens; a raw prompt gets the tokenizer's (e.g. BOS)
        return list(self.tokenizer.encode(text, add_special_tokens=bool(settings.raw_prompt)))

    def context_limit(self) -> int:
        return min(self.sampler.max_cache_len, self.sampler.cfg.max_position_embeddings)

    def generate(self, items: Sequence[EvalItem], settings, seed: int, *, batch_size: int | None = None
                 ) -> list[list[Sample]]:
        from coderl_jax.sampling.sampler import SamplingParams

        raw_stops = sorted({s for item in items for s in item.raw_stop}) if settings.raw_prompt else []
        stop = tuple(settings.stop) + tuple(s for s in raw_stops if s not in settings.stop)
        sp = SamplingParams(n=settings.n, max_new_tokens=settings.max_new_tokens, temperature=settings.temperature,
                            top_p=settings.top_p, top_k=settings.top_k, stop=stop, seed=seed)
        ids = [self.encode(item, settings) for item in items]
        fits = [0 < len(p) and len(p) + settings.max_new_tokens <= self.context_limit() for p in ids]
        todo = [p for p, ok in zip(ids, fits) if ok]
        if len(todo) < len(ids):
            log.warning("%d prompt(s) longer than the context (%d tokens) minus max_new_tokens=%d: scored as "
                        "failures (%s)", len(ids) - len(todo), self.context_limit(), settings.max_new_tokens,
                        ", ".join(it.id for it, ok in zip(items, fits) if not ok))
        out: list[list[Sample]] = []
        if todo:
            # pad to the run's chunk size so the last, smaller chunk reuses the compiled decode
            batch = max(len(todo), batch_size or len(items))
            groups = self.sampler.generate(todo + [todo[0]] * (batch - len(todo)), sp)[: len(todo)]
        else:
            groups = []
        it = iter(groups)
        for ok in fits:
            if ok:
                out.append([Sample(c.text, c.finish_reason, len(c.token_ids)) for c in next(it)])
            else:
                out.append([Sample("", "prompt_too_long", 0)] * settings.n)
        return out


def load_model(model: str | Path, *, tokenizer_dir: str | Path | None = None, dtype: str | None = None,
               max_cache_len: int | None = None) -> SamplerGenerator:
    """A generator for a Hugging Face directory or a training checkpoint (a step directory, or a
    checkpoints root meaning its latest step), resolved as `coderl export` resolves --model."""
    from coderl_jax.models import checkpoint, hf_io
    from coderl_jax.sampling.sampler import Sampler

    model = Path(model)
    step_dir = checkpoint.resolve_step_dir(model)
    if step_dir is not None:
        cfg, params = checkpoint.load_params(step_dir, param_dtype=dtype, dtype=dtype)
        source = step_dir
    elif (model / hf_io.CONFIG_FILE).exists():
        cfg, params = hf_io.load_hf(model, param_dtype=dtype, dtype=dtype)
        source = model
    else:
        raise hf_io.CheckpointError(f"{model}: neither a Hugging Face directory (no config.json) nor a params "
                                    f"checkpoint (no {checkpoint.PARAMS_DIR}/)")
    tok_dir = Path(tokenizer_dir) if tokenizer_dir else hf_io.find_tokenizer_dir(source)
    if tok_dir is None:
        raise hf_io.CheckpointError(f"{source}: no tokenizer files here or in the parent directories; "
                                    f"pass --tokenizer DIR")
    tokenizer = hf_io.load_tokenizer(tok_dir)
    sampler = Sampler(cfg, params, tokenizer, max_cache_len=max_cache_len)
    identity: dict[str, Any] = {"model": str(source.absolute()), "dtype": dtype or "float32"}
    return SamplerGenerator(sampler, tokenizer, identity=identity)

