"""Logical-axis rule tables: which mesh axes each logical dimension name is split over.

Each parameter dimension has a logical name; a rule table maps a logical name to a mesh axis, a
tuple of mesh axes, or None (replicated). Two tables:

| logical    | used by                                      | TRAIN_RULES         | SAMPLE_RULES        |
|------------|----------------------------------------------|---------------------|---------------------|
| vocab      | embed_tokens[v,h], lm_head[h,v]              | tensor              | tensor              |
| embed      | hidden dim of every matrix                   | fsdp                | (replicated)        |
| heads      | q_proj[h,n*d], o_proj[n*d,h], q_bias         | tensor              | tensor              |
| kv_heads   | k_proj/v_proj[h,k*d], k_bias/v_bias, cache   | tensor              | tensor              |
| mlp        | gate_proj/up_proj[h,f], down_proj[f,h]       | tensor              | tensor              |
| norm       | RMSNorm weights [h]                          | (replicated)        | (replicated)        |
| head_dim   | q_norm/k_norm weights [d], cache             | (replicated)        | (replicated)        |
| batch      | activations, token batches, cache            | (data, fsdp)        | (data, fsdp)        |
| length     | sequence / cache slots                       | (replicated)        | (replicated)        |

Training splits parameters over fsdp (ZeRO-3 style: gathered per layer by XLA) and tensor;
sampling keeps a full copy on every data/fsdp group and splits only over tensor, so a decode step
needs no parameter all-gather. Heads are split in whole heads: "heads" and "kv_heads" count heads,
not the flattened n*d columns. A dimension not divisible by the product of its mesh axes is
replicated instead (logged at debug level), so any mesh works for any model, at some memory cost.
Which parameter dimension has which logical name is the model's business:
`coderl_jax.models.sharding` (this package imports nothing from models).
"""

from __future__ import annotations

import logging
import math
from typing import Mapping

from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from coderl_jax.parallel.mesh import BATCH_AXES

log = logging.getLogger(__name__)

Rules = Mapping[str, "str | tuple[str, ...] | None"]

TRAIN_RULES: Rules = {
    "vocab": "tensor", "embed": "fsdp", "heads": "tensor", "kv_heads": "tensor", "mlp": "tensor",
    "norm": None, "head_dim": None, "batch": BATCH_AXES, "length": None,
}
SAMPLE_RULES: Rules = {**TRAIN_RULES, "embed": None}


def logical_to_spec(axes, shape, mesh: Mesh, rules: Rules, *, units: Mapping[str, int] | None = None,
                    what: str = "array") -> P:
    """PartitionSpec for an array whose dimensions have logical names `axes` (None: replicated).

    `units` gives, per logical name, the count that must divide evenly (e.g. {"heads": 28} for a
    dimension of 28 * head_dim columns); other dimensions use their size.
    """
    units = units or {}
    spec, used = [], set()
    for logical, size in zip(axes, shape, strict=True):
        mesh_axes = rules.get(logical) if logical is not None else None
        if isinstance(mesh_axes, str):
            mesh_axes = (mesh_axes,)
        mesh_axes = tuple(a for a in (mesh_axes or ()) if mesh.shape.get(a, 1) > 1)
        if set(mesh_axes) & used:
            raise ValueError(f"{what}: mesh axes {mesh_axes} used twice in one sharding")
        split = math.prod(mesh.shape[a] for a in mesh_axes)
        count = units.get(logical, size)
        if mesh_axes and count % split:
            log.debug("%s: dimension %r (%d) not divisible by mesh axes %s (%d): replicated",
                      what, logical, count, mesh_axes, split)
            mesh_axes = ()
        used.update(mesh_axes)
        spec.append(None if not mesh_axes else mesh_axes[0] if len(mesh_axes) == 1 else mesh_axes)
    return P(*spec)


def activation_sharding(mesh: Mesh, axes, shape, rules: Rules | None = None, *,
                        units: Mapping[str, int] | None = None) -> NamedSharding:
    """Sharding of an activation / input with logical `axes` (e.g. ("batch", "length"))."""
    rules = TRAIN_RULES if rules is None else rules
    return NamedSharding(mesh, logical_to_spec(axes, shape, mesh, rules, units=units, what=f"{axes}"))


def batch_sharding(mesh: Mesh, shape, rules: Rules | None = None) -> NamedSharding:
    """Leading dimension over ("data", "fsdp"), the rest replicated: tokens_bt, mask_bt, ..."""
    return activation_sharding(mesh, ("batch",) + (None,) * (len(shape) - 1), shape, rules)
