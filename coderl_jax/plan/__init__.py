"""`coderl plan`: compile a run's programs ahead of time for a TPU topology, on a CPU host.

The planner (`planner.py`) builds the same jitted programs the trainer runs and reports per-chip
memory, whether they fit, and FLOPs per step; `cli.py` is the command line.
"""

from coderl_jax.plan.planner import (  # noqa: F401
    ACCELERATOR_TYPES, CHIPS, Chip, PlanError, find_libtpu, format_report, model_config_path, parse_topology, plan,
)
