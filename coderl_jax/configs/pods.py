"""The paper-scale configs: Qwen2.5-Coder-1.5B/7B-Instruct with the paper's training setting
(`paper_config`, coderl_jax/configs/paper_settings.py) on three TPU pods, one row per config.

Each row holds what differs between them: the model, the topology, the device mesh and the two
knobs that make a step fit in HBM (micro-batches per mini-batch, and the decode rows: the step's
128 x 8 sequences are sampled in one call through that many refilled rows, so a long sample holds
up only its own row). A row's
name is a preset (`coderl train --config qwen25_coder_7b_v5p64`, `coderl plan --config ...`);
configs/<name>.py re-exports it for scripts that take a path.

- v5p-8: v5p:2x2x1, 4 chips (8 TensorCores), one host;
- v5p-64: v5p:2x4x4, 32 chips on 8 hosts;
- v6e-64: v6e:8x8, 64 chips on 16 hosts.

`coderl plan` confirms that the 7B layouts fit (docs/scale.md has its figures). The 1.5B layouts
follow the same rules (one or two rows per data-parallel group per micro-batch) and are not yet
confirmed: plan before renting. Weights: `tpu_scripts/setup.sh --bucket B --model Qwen/<model>` (or
`--model gs://B/models/<model>`) stages them to models/<model> on every worker; the planner reads
the architecture from coderl_jax/configs/models/<model>/config.json. `out_dir` is a local directory
on each worker (process 0's holds the metrics); the checkpoints go to
gs://{bucket}/runs/<name>/checkpoints, which every host sees: run with `bucket=NAME` (docs/scale.md:
checkpoints on a pod).
"""

from __future__ import annotations

import dataclasses

from coderl_jax.configs.paper_settings import paper_config
from coderl_jax.train.config import MeshConfig, TrainConfig

QWEN_1P5B = "models/Qwen2.5-Coder-1.5B-Instruct"
QWEN_7B = "models/Qwen2.5-Coder-7B-Instruct"


@dataclasses.dataclass(frozen=True)
class Pod:
    model: str
    topology: str
    mesh: MeshConfig
    micro_batches: int  # per mini-batch of 64 prompts x 8 samples = 512 rows
    decode_slots: int  # rows decoding at once (rollout.decode_slots); the KV cache is this many rows


# rows per micro-batch = 512 / micro_batches; in brackets, per data-parallel group (data x fsdp)
PODS: dict[str, Pod] = {
    "qwen25_coder_1p5b_v5p8": Pod(QWEN_1P5B, "v5p:2x2x1", MeshConfig(data=1, fsdp=4, tensor=1), 64, 256),  # 8 (2)
    "qwen25_coder_1p5b_v5p64": Pod(QWEN_1P5B, "v5p:2x4x4", MeshConfig(data=1, fsdp=32, tensor=1), 16, 1024),  # 32 (1)
    "qwen25_coder_1p5b_v6e64": Pod(QWEN_1P5B, "v6e:8x8", MeshConfig(data=1, fsdp=32, tensor=2), 16, 512),  # 32 (1)
    "qwen25_coder_7b_v5p8": Pod(QWEN_7B, "v5p:2x2x1", MeshConfig(data=1, fsdp=4, tensor=1), 128, 64),  # 4 (1)
    "qwen25_coder_7b_v5p64": Pod(QWEN_7B, "v5p:2x4x4", MeshConfig(data=1, fsdp=32, tensor=1), 16, 256),  # 32 (1)
    "qwen25_coder_7b_v6e64": Pod(QWEN_7B, "v6e:8x8", MeshConfig(data=1, fsdp=16, tensor=4), 32, 256),  # 16 (1)
}


def pod_config(name: str) -> TrainConfig:
    """The paper's setting for the row `name` of PODS, writing to runs/<name>."""
    if name not in PODS:
        raise KeyError(f"{name!r}: not a pod config; one of {', '.join(sorted(PODS))}")
    pod = PODS[name]
    return paper_config(model=pod.model, out_dir=f"runs/{name}", topology=pod.topology, mesh=pod.mesh,
                        micro_batches=pod.micro_batches, decode_slots=pod.decode_slots,
                        checkpoint_dir=f"gs://{{bucket}}/runs/{name}/checkpoints")
