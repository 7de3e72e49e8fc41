"""Qwen2.5-Coder-7B-Instruct with the paper's hyper-parameters on v6e:8x8 (v6e-64).

v6e-64: 64 chips on 16 hosts. `coderl plan` confirms that this layout (mesh, micro-batches, prompts
per sampler call) fits; its figures are in docs/scale.md. Weights: `tpu_scripts/setup.sh --model
Qwen/Qwen2.5-Coder-7B-Instruct` downloads them to models/Qwen2.5-Coder-7B-Instruct on every worker;
the planner reads configs/models/Qwen2.5-Coder-7B-Instruct/config.json.

    coderl plan --config configs/qwen25_coder_7b_v6e64.py
    tpu_scripts/launch.sh --name NAME --zone ZONE --config configs/qwen25_coder_7b_v6e64.py
"""

from coderl_jax.train.config import MeshConfig
from coderl_jax.train.paper import paper_config

config = paper_config(
    model="models/Qwen2.5-Coder-7B-Instruct",
    out_dir="runs/qwen25_coder_7b_v6e64",  # a local directory on worker 0 (see docs/scale.md: checkpoints)
    topology="v6e:8x8",
    mesh=MeshConfig(data=1, fsdp=16, tensor=4),
    micro_batches=32,  # 16 rows per micro-batch (1 per data-parallel group)
    prompts_per_generate=32,  # x 8 samples per sampler call
)
