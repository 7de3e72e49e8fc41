"""The device mesh: three named axes, ("data", "fsdp", "tensor"), over all devices of the job.

- data:   pure data parallelism (parameters replicated along it);
- fsdp:   data parallelism with parameters (and optimizer state) split along it;
- tensor: Megatron-style splitting of heads, MLP and vocabulary.

The batch is split over ("data", "fsdp"). `make_mesh` takes the size of each axis; one of them may
be -1, meaning "all remaining devices". The devices are those of the whole (possibly multi-host)
job, `jax.devices()`, arranged by `jax.make_mesh` so that neighbouring mesh coordinates are
physical neighbours on TPU. On a multi-slice TPU job the slices are laid out along "data" (the
axis that only all-reduces gradients), so the other axes stay inside a slice's fast interconnect.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os

import jax
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh

from coderl_jax.errors import UserError

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")  # the mesh axes the batch dimension is split over

log = logging.getLogger(__name__)


class MeshError(UserError, ValueError):
    """Mesh axis sizes that do not fit the devices of the job."""


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Axis sizes of the mesh, as written in an experiment config (-1: the remaining devices)."""

    data: int = 1
    fsdp: int = -1
    tensor: int = 1

    def make(self, devices=None) -> Mesh:
        return make_mesh(data=self.data, fsdp=self.fsdp, tensor=self.tensor, devices=devices)


def resolve_axis_sizes(sizes: dict[str, int], num_devices: int) -> dict[str, int]:
    """Replace a single -1 by the remaining device count and check the product."""
    bad = {k: v for k, v in sizes.items() if not isinstance(v, int) or (v < 1 and v != -1)}
    if bad:
        raise MeshError(f"mesh axis sizes must be positive integers or -1, got {bad}")
    free = [k for k, v in sizes.items() if v == -1]
    if len(free) > 1:
        raise MeshError(f"at most one mesh axis may be -1, got {free}")
    fixed = math.prod(v for v in sizes.values() if v != -1)
    if free:
        if num_devices % fixed:
            raise MeshError(
                f"mesh {sizes}: {num_devices} devices are not divisible by the fixed axes' product {fixed}")
        sizes = {**sizes, free[0]: num_devices // fixed}
    elif fixed != num_devices:
        raise MeshError(f"mesh {sizes} needs {fixed} devices, the job has {num_devices}")
    return sizes


def make_mesh(data: int = 1, fsdp: int = -1, tensor: int = 1, devices=None) -> Mesh:
    """A ("data", "fsdp", "tensor") mesh over `devices` (default: every device of the job)."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = resolve_axis_sizes({"data": data, "fsdp": fsdp, "tensor": tensor}, len(devices))
    shape = tuple(sizes[a] for a in AXES)
    slices = sorted({getattr(d, "slice_index", 0) for d in devices})
    if len(slices) > 1:  # multi-slice TPU: slices along "data", each slice holds fsdp x tensor
        if sizes["data"] % len(slices):
            raise MeshError(f"mesh {sizes}: data={sizes['data']} must be a multiple of the "
                            f"{len(slices)} TPU slices")
        ici = (sizes["data"] // len(slices), sizes["fsdp"], sizes["tensor"])
        grid = mesh_utils.create_hybrid_device_mesh(ici, (len(slices), 1, 1), devices=devices)
        mesh = Mesh(grid, AXES, axis_types=(AxisType.Auto,) * 3)
    else:
        try:
            mesh = jax.make_mesh(shape, AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)
        except NotImplementedError:
            # an axis that is not a product of whole physical axes (tensor=4 on a v6e 8x8 torus):
            # split a physical axis, keeping each mesh axis on neighbouring chips
            grid = mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
            mesh = Mesh(grid, AXES, axis_types=(AxisType.Auto,) * 3)
    log.debug("mesh %s over %d devices", dict(mesh.shape), mesh.size)
    return mesh


def data_parallel_size(mesh: Mesh) -> int:
    """How many ways the batch rows are split: the product of the BATCH_AXES sizes."""
    return math.prod(mesh.shape[a] for a in BATCH_AXES)


def init_distributed() -> None:
    """Join a multi-host job; call it first, before any other JAX call. A no-op on a single host or
    when already joined.

    - a TPU VM slice (`CODERL_DISTRIBUTED=1`, set by tpu_scripts/launch.sh, or several
      TPU_WORKER_HOSTNAMES): JAX finds the coordinator and this host's id from the TPU metadata;
    - any other cluster: `JAX_COORDINATOR_ADDRESS=host:port` with `CODERL_NUM_PROCESSES` and
      `CODERL_PROCESS_ID` (0 is the coordinator). On CPU the processes' collectives use gloo,
      which is how the multi-host tests run several processes on one machine.
    """
    if jax.distributed.is_initialized():
        return
    num, pid = os.environ.get("CODERL_NUM_PROCESSES"), os.environ.get("CODERL_PROCESS_ID")
    address = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if num is not None or pid is not None:
        if not (address and num and pid):
            raise ValueError("a multi-process job needs JAX_COORDINATOR_ADDRESS, CODERL_NUM_PROCESSES and "
                             f"CODERL_PROCESS_ID together (got {address!r}, {num!r}, {pid!r})")
        if os.environ.get("JAX_PLATFORMS", "") == "cpu":
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=address, num_processes=int(num), process_id=int(pid))
    elif (os.environ.get("CODERL_DISTRIBUTED") == "1" or address
          or "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")):
        jax.distributed.initialize()
    else:
        return
    log.info("process %d of %d, %d local / %d global devices", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count())
