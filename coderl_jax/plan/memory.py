"""An analytic estimate of a training step's accelerator memory on one device (a single GPU).

`coderl plan` measures memory by compiling for a TPU topology (planner.py); there is no such
compile-only target for a GPU, so a one-GPU config (`gpu_1p5b`) is sized by this estimate instead:
a pure function of the model's shapes and the training config, term by term, in GiB. No mesh: every
term is the whole array (data = fsdp = tensor = 1).

Between the phases of a step these stay resident:

  params         the float32 master weights: parameters x bytes(param_dtype)
  optimizer      AdamW's two moments in the parameters' dtype (SGD: one with momentum, else none)
  reference      the frozen reference policy for the KL term, a copy in the parameters' dtype (0 without KL)
  sampler_copy   the sampler's copy of the weights in `rollout.dtype` ("auto": bfloat16, as on TPU / GPU),
                 made before a rollout and kept until the next one

The rollout adds:

  sampler_stacked  the copy's decoder layers stacked into [layers, ...] arrays (the sampler scans its
                   layers on GPU / TPU): the layer weights once more, in `rollout.dtype`
  kv_cache         2 (k, v) x layers x kv_heads x head_dim x rows per sampler call (prompts_per_generate x
                   group_size) x (max_prompt_tokens + max_new_tokens) x bytes(cache_dtype)
  kv_cache_growth  the cache grows between decode loops by padding into a new buffer; during the last growth
                   the old cache (7/8 of the final one) is alive beside the new: counted as a second full cache
  sampler_temporaries  the prefill's attention scores and probabilities of one layer (prompts_per_generate x
                   heads x prompt^2 x 4 B x 2) and the last decode step's logits (rows x vocab x 4 B x 2)

The update (one micro-batch of `rows` sequences of `length` = prompt + response tokens) adds:

  gradients      float32 gradients and their accumulator over micro-batches (or, in the optimizer, the
                 update): 2 x parameters x bytes(param_dtype)
  activations    with remat, each layer's input is saved for the backward pass:
                 layers x rows x length x hidden x bytes(dtype) x ACTIVATION_FACTOR
  attention      one layer's attention recomputed in the backward pass: this decoder materialises the
                 float32 [heads, length, length] scores per row (no flash kernel), so
                 rows x heads x length^2 x 4 B x ATTENTION_FACTOR
  mlp            one layer's MLP intermediates and their gradients: rows x length x intermediate x
                 bytes(dtype) x MLP_FACTOR
  logits         one chunk of the chunked log-probs (rl/logprobs.py): chunk rows x vocab x 4 B x
                 LOGITS_FACTOR (logits, probabilities, their gradient), plus the output projection cast to
                 `dtype` (vocab x hidden x bytes(dtype))

Scoring (old / reference log-probs, one micro-batch, no gradients) holds the resident terms plus
attention, mlp and logits: never more than the update.

The factors are deliberately generous, and what the estimate leaves out (XLA's fragmentation and
scratch space, small temporaries, the CUDA context) is the margin a config keeps below the device's
memory: the one-GPU preset keeps its largest phase under 75% of an 80 GB GPU (tests/configs).
Calibration: for Qwen2.5-Coder-7B with 9,216-token rows on v5p-8, `coderl plan`'s update
temporaries (docs/scale.md) imply attention at ~0.8 [heads, L, L] float32 matrices per row, against
ATTENTION_FACTOR = 2 here.
"""

from __future__ import annotations

GIB = 1024**3
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}

ACTIVATION_FACTOR = 2  # the saved layer input, plus room for float32 copies of it (norms, residual grads)
ATTENTION_FACTOR = 2  # float32 [heads, L, L] matrices alive per row at the peak of one layer's backward
MLP_FACTOR = 6  # gate, up, activation and their gradients, [rows x L, intermediate] each
LOGITS_FACTOR = 4  # [chunk, vocab] float32: logits, log-probabilities / probabilities, their gradient
PREFILL_FACTOR = 2  # the prefill's float32 scores and probabilities of one layer
DECODE_LOGITS_FACTOR = 2

RESIDENT = ("params", "optimizer", "reference", "sampler_copy")
PHASES = {
    "rollout": (*RESIDENT, "sampler_stacked", "kv_cache", "kv_cache_growth", "sampler_temporaries"),
    "scoring": (*RESIDENT, "attention", "mlp", "logits"),
    "update": (*RESIDENT, "gradients", "activations", "attention", "mlp", "logits"),
}


def _bytes(dtype: str) -> int:
    if dtype not in BYTES:
        raise ValueError(f"dtype {dtype!r}: expected one of {', '.join(BYTES)}")
    return BYTES[dtype]


def sampling_dtype(train_cfg) -> str:
    """The sampler copy's dtype: `rollout.dtype`, "auto" being bfloat16 (an accelerator's choice)."""
    dtype = getattr(train_cfg.rollout, "dtype", "auto")
    return "bfloat16" if dtype == "auto" else dtype


def layer_params(model_cfg) -> int:
    """Parameters of the decoder layers (all but the embedding, the final norm and an untied head)."""
    outside = model_cfg.vocab_size * model_cfg.hidden_size * (1 if model_cfg.tie_word_embeddings else 2)
    return model_cfg.num_params() - outside - model_cfg.hidden_size


def estimate_memory(model_cfg, train_cfg) -> dict[str, float]:
    """GiB per term (the module docstring) for `train_cfg` on one device; `phases` adds them up."""
    m, r = model_cfg, train_cfg.rollout
    n_params = m.num_params()
    p_bytes, dt_bytes = _bytes(train_cfg.param_dtype), _bytes(train_cfg.dtype)
    s_bytes = _bytes(sampling_dtype(train_cfg))
    prompt = train_cfg.data.max_prompt_tokens
    length = prompt + r.max_new_tokens
    rows_per_step = r.prompts_per_step * r.group_size
    rows = rows_per_step // (train_cfg.updates_per_step * train_cfg.micro_batches)  # one micro-batch
    per_generate = r.prompts_per_generate or r.prompts_per_step
    gen_rows = per_generate * r.group_size
    optim = train_cfg.optim
    moments = 2 if optim.name == "adamw" else (1 if getattr(optim, "momentum", 0) else 0)

    kv = 2 * m.num_layers * m.num_kv_heads * m.head_dim * gen_rows * length * _bytes(r.cache_dtype)
    loss = train_cfg.loss
    tokens = rows * length
    chunk = tokens if tokens * m.vocab_size <= loss.logprob_unchunked_elements else min(loss.logprob_chunk_rows,
                                                                                        tokens)
    terms = {
        "params": n_params * p_bytes,
        "optimizer": moments * n_params * p_bytes,
        "reference": n_params * p_bytes if loss.kl_coef else 0,
        "sampler_copy": n_params * s_bytes,
        "sampler_stacked": layer_params(m) * s_bytes,
        "kv_cache": kv,
        "kv_cache_growth": kv,
        "sampler_temporaries": (per_generate * m.num_heads * prompt**2 * 4 * PREFILL_FACTOR
                                + gen_rows * m.vocab_size * 4 * DECODE_LOGITS_FACTOR),
        "gradients": 2 * n_params * p_bytes,
        "activations": m.num_layers * rows * length * m.hidden_size * dt_bytes * ACTIVATION_FACTOR,
        "attention": rows * m.num_heads * length**2 * 4 * ATTENTION_FACTOR,
        "mlp": rows * length * m.intermediate_size * dt_bytes * MLP_FACTOR,
        "logits": chunk * m.vocab_size * 4 * LOGITS_FACTOR + m.vocab_size * m.hidden_size * dt_bytes,
    }
    return {k: v / GIB for k, v in terms.items()}


def phases(terms: dict[str, float]) -> dict[str, float]:
    """GiB per phase of the step (rollout, scoring, update): the sum of the terms it holds."""
    return {name: sum(terms[t] for t in held) for name, held in PHASES.items()}


def peak_gib(model_cfg, train_cfg) -> float:
    return max(phases(estimate_memory(model_cfg, train_cfg)).values())


def format_estimate(terms: dict[str, float]) -> str:
    """A Markdown table: each term's GiB and the phases that hold it, then the phase totals."""
    totals = phases(terms)
    lines = ["| term | GiB | " + " | ".join(PHASES) + " |", "|---|---|" + "---|" * len(PHASES)]
    for term, gib in terms.items():
        lines.append(f"| {term} | {gib:.2f} | " + " | ".join("x" if term in held else "" for held in PHASES.values())
                     + " |")
    lines.append("| **total** | | " + " | ".join(f"**{totals[p]:.2f}**" for p in PHASES) + " |")
    return "\n".join(lines)
