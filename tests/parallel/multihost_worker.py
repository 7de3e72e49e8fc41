"""One process of a multi-host (multi-controller) run of the sharded train step, on CPU.

    python multihost_worker.py --process-id I --num-processes N --port P --local-devices D --out FILE

Each process owns D CPU devices; with N > 1 the processes join through jax.distributed (the
coordinator on 127.0.0.1:P, gloo collectives between them), so the mesh spans N x D devices in
N processes, as on a TPU pod slice with N hosts. Every process builds the same global batch from a
seed and hands JAX only its own rows (`jax.make_array_from_process_local_data`), as a per-host data
loader does; parameters are created from the same seed on every host. After two train steps the
process writes the metrics and a checksum of every parameter (gathered to all hosts) to FILE.
Run by test_multihost.py; not collected by pytest (its name does not start with test_).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--process-id", type=int, required=True)
    ap.add_argument("--num-processes", type=int, required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--local-devices", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={a.local_devices}"
    import jax

    if a.num_processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=f"127.0.0.1:{a.port}", num_processes=a.num_processes,
                                   process_id=a.process_id, initialization_timeout=60)
    import numpy as np
    from jax.experimental import multihost_utils

    from coderl_jax.models import ModelConfig
    from coderl_jax.models.transformer import param_shapes
    from coderl_jax.parallel import make_mesh
    from coderl_jax.optim import OptimConfig, make_optimizer
    from coderl_jax.rl.train_step import LossConfig, TrainState, make_sharded_train_step

    assert jax.process_count() == a.num_processes and jax.local_device_count() == a.local_devices
    cfg = ModelConfig(family="qwen2", vocab_size=128, hidden_size=32, intermediate_size=64, num_layers=1,
                      num_heads=4, num_kv_heads=2, head_dim=8, attention_bias=True, tie_word_embeddings=True)
    optimizer = make_optimizer(OptimConfig(learning_rate=1e-2, eps=1e-4, weight_decay=0.01, grad_clip=1.0))
    mesh = make_mesh(data=1, fsdp=-1, tensor=1)  # every device of the job, all processes
    step, state_sh, batch_sh = make_sharded_train_step(cfg, LossConfig(kl_coef=0.05), optimizer, mesh, num_micro=2)

    # the same host values everywhere (NumPy, from a seed: no per-op compiles); each device gets
    # its own slice of the global array
    shapes = param_shapes(cfg)
    init = np.random.RandomState(1)
    params = jax.tree.map(lambda s: (0.02 * init.standard_normal(s.shape)).astype(s.dtype), shapes)
    opt_state = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), jax.eval_shape(optimizer.init, shapes))
    host_state = TrainState(step=np.zeros((), np.int32), params=params, opt_state=opt_state)
    state = jax.tree.map(lambda x, s: jax.make_array_from_callback(np.shape(x), s, lambda idx, x=x: np.asarray(x)[idx]),
                         host_state, state_sh)

    rng = np.random.RandomState(0)
    b, length, prompt = 16, 12, 5
    tokens = rng.randint(0, cfg.vocab_size, (b, length)).astype(np.int32)
    pads, ends = rng.randint(0, 3, b), prompt + rng.randint(2, length - prompt + 1, b)
    cols = np.arange(length)[None]
    attn = (cols >= pads[:, None]) & (cols < ends[:, None])
    batch = dict(tokens=tokens, positions=np.maximum(np.cumsum(attn, 1) - 1, 0).astype(np.int32), attn_mask=attn,
                 loss_mask=(cols >= prompt - 1) & (cols < ends[:, None] - 1),
                 advantages=np.repeat(rng.normal(0, 1, (b, 1)), length, 1).astype(np.float32))
    old = (rng.normal(0.0, 0.3, (b, length)) - np.log(cfg.vocab_size)).astype(np.float32)  # ~ a random policy
    batch["old_logprobs"] = old
    batch["ref_logprobs"] = (old + rng.normal(0, 0.1, old.shape)).astype(np.float32)

    # this host's rows: the rows of the global batch that its devices hold (contiguous blocks)
    per_host = b // a.num_processes
    mine = slice(a.process_id * per_host, (a.process_id + 1) * per_host)
    global_batch = {k: jax.make_array_from_process_local_data(batch_sh, v[mine], (b, length)) for k, v in batch.items()}

    metrics = []
    for i in range(2):
        state, m = step(state, global_batch, jax.random.key(i))
        metrics.append({k: float(v) for k, v in jax.device_get(m).items()})
    params = multihost_utils.process_allgather(state.params, tiled=True)
    sums = {"/".join(str(getattr(p, "key", p)) for p in path): [float(np.sum(np.asarray(x, np.float64))),
                                                                float(np.sum(np.abs(np.asarray(x, np.float64))))]
            for path, x in jax.tree_util.tree_flatten_with_path(params)[0]}
    result = {"process": jax.process_index(), "processes": jax.process_count(), "devices": jax.device_count(),
              "metrics": metrics, "param_sums": sums, "step": int(jax.device_get(state.step))}
    with open(a.out, "w") as f:
        json.dump(result, f)
    if a.num_processes > 1:
        jax.distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
