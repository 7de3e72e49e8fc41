"""Qwen2.5-Coder-1.5B-Instruct on one 80 GB GPU (A100 / H100 80GB): the paper's setting
(`paper_config`, coderl_jax/configs/paper_settings.py) with responses cut to fit.

    XLA_PYTHON_CLIENT_MEM_FRACTION=0.95 coderl train --config gpu_1p5b model=DIR data.train_path=FILE

Weights: a local Hugging Face directory (default `models/Qwen2.5-Coder-1.5B-Instruct`, e.g.
`huggingface-cli download Qwen/Qwen2.5-Coder-1.5B-Instruct --local-dir models/Qwen2.5-Coder-1.5B-Instruct`);
problems: a local parquet (default `data/prime_code/train.parquet`, as the pod presets) and held-out
problems (`data/prime_code/validation.jsonl`). `pip install -e '.[cuda]'`; the sandbox needs
bubblewrap (`tracer.require_isolation`).

What differs from the paper's setting, and why:
- one device: mesh data = fsdp = tensor = 1; no TPU topology;
- responses up to 4,096 tokens (the paper: 8,192), prompts up to 1,024 as the paper: rows of
  5,120 tokens;
- micro-batches of 4 rows (128 per mini-batch of 512), 8 prompts x 8 samples per sampler call.

Unchanged: 128 prompts x 8 samples per step, 2 updates per step, AdamW lr 1e-6, KL k3 0.001,
clip 0.2 / 0.2, dual clip 3.0, CodeRL+ alignment (40% alignment prompts), 656 steps; float32
master weights and optimizer state, bfloat16 activations, sampler copy and KV cache, remat.

Memory, from the analytic estimate (coderl_jax/plan/memory.py; docs/scale.md "One GPU" has the
table): rollout 46.6, scoring 40.1, update 54.8 GiB, the update the largest. That is under 75% of
an 80 GB GPU (59.7 of 79.6 GiB, which is also JAX's default pool); with
XLA_PYTHON_CLIENT_MEM_FRACTION=0.95 XLA may use 75.6 GiB, ~21 GiB above the estimate for what it
leaves out. tests/configs/test_gpu_preset.py checks it. Doubling the micro-batch (8 rows, 69.5 GiB)
or the rows per sampler call (16 prompts, 65.0 GiB) would not keep that margin; the paper's 8,192
tokens fit only at one row per micro-batch and 4 prompts per call (50.1 GiB), 4x the update calls.
"""

import dataclasses

from coderl_jax.configs.paper_settings import paper_config
from coderl_jax.train.config import MeshConfig

QWEN_1P5B = "models/Qwen2.5-Coder-1.5B-Instruct"

_paper = paper_config(model=QWEN_1P5B, out_dir="runs/gpu_1p5b", topology="", mesh=MeshConfig(data=1, fsdp=1, tensor=1),
                      micro_batches=128, prompts_per_generate=8, max_new_tokens=4096)
# model-written code runs only in a network-isolated sandbox (bubblewrap): stop at start-up otherwise
config = dataclasses.replace(_paper, tracer=dataclasses.replace(_paper.tracer, require_isolation=True))
