"""Qwen2.5-Coder-1.5B-Instruct with the paper's hyper-parameters on v5p:2x2x1 (v5p-8).

v5p-8: 4 chips (8 TensorCores), one host. The layout (mesh, micro-batches, prompts per sampler call)
follows the rules of the planned 7B configs; `coderl plan` has not confirmed it yet (docs/scale.md):
run it before renting. Weights: `tpu_scripts/setup.sh --model Qwen/Qwen2.5-Coder-1.5B-Instruct`
downloads them to models/Qwen2.5-Coder-1.5B-Instruct on every worker; the planner reads
configs/models/Qwen2.5-Coder-1.5B-Instruct/config.json.

    coderl plan --config configs/qwen25_coder_1p5b_v5p8.py
    tpu_scripts/launch.sh --name NAME --zone ZONE --config configs/qwen25_coder_1p5b_v5p8.py
"""

from coderl_jax.train.config import MeshConfig
from coderl_jax.train.paper import paper_config

config = paper_config(
    model="models/Qwen2.5-Coder-1.5B-Instruct",
    out_dir="runs/qwen25_coder_1p5b_v5p8",  # a local directory on worker 0 (see docs/scale.md: checkpoints)
    topology="v5p:2x2x1",
    mesh=MeshConfig(data=1, fsdp=4, tensor=1),
    micro_batches=64,  # 8 rows per micro-batch (2 per data-parallel group)
    prompts_per_generate=32,  # x 8 samples per sampler call
)
