"""Device mesh, logical-axis sharding rules and multi-host initialisation."""

from coderl_jax.parallel.mesh import (AXES, BATCH_AXES, MeshConfig, MeshError, data_parallel_size, init_distributed,
                                      make_mesh)
from coderl_jax.parallel.rules import (SAMPLE_RULES, TRAIN_RULES, activation_sharding, batch_sharding,
                                       logical_to_spec)

__all__ = [
    "AXES", "BATCH_AXES", "MeshConfig", "MeshError", "SAMPLE_RULES", "TRAIN_RULES", "activation_sharding",
    "batch_sharding", "data_parallel_size", "init_distributed", "logical_to_spec", "make_mesh",
]
