"""`coderl plan --config F [--topology v5p:2x4x4]`: the command line of the planner (coderl_jax.plan.planner)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from coderl_jax.plan.planner import PlanError, find_libtpu, format_report, parse_topology, plan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True,
                        help="a preset name (e.g. qwen25_coder_7b_v5p64) or a Python config file defining `config`")
    parser.add_argument("--topology", default="",
                        help="TPU topology (v5p:2x4x4, v6e:8x8, v5e:4x4) or accelerator type (v5p-64); "
                             "default: the config's `topology`")
    parser.add_argument("--model-config", default=None,
                        help="a Hugging Face config.json (default: <model>/config.json, else the one shipped in "
                             "coderl_jax/configs/models/<name>)")
    parser.add_argument("--mfu", type=float, default=0.4, help="model FLOPs utilisation for the step time (0.4)")
    parser.add_argument("--hbm-gib", type=float, default=None, help="override the chip's HBM (GiB)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="typed config overrides")


def _prepare_environment(libtpu: str) -> None:
    """Compile-only: JAX itself stays on the CPU; libtpu is loaded just for its compiler."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ["TPU_LIBRARY_PATH"] = libtpu
    # a CPU host has no TPU metadata; say so, so libtpu does not guess (and warn)
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", "v5p-8")
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    os.environ.setdefault("TPU_WORKER_ID", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # libtpu takes /tmp/libtpu_lockfile so that two processes never drive one TPU; compiling touches
    # no TPU, so several plans (or a plan beside a test run) may load it at once
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    if "jax" in sys.modules:
        # `coderl` imported jax already (the compile cache), which read JAX_PLATFORMS then; on a TPU VM
        # its cloud_tpu_init chose "tpu,cpu". Backends start later, so the choice above still applies.
        import jax

        jax.config.update("jax_platforms", os.environ["JAX_PLATFORMS"])


def main(args) -> int:
    from coderl_jax.train.config_util import ConfigOverrideError, apply_overrides, load_config

    try:
        cfg = apply_overrides(load_config(args.config), args.overrides)
        topology = args.topology or cfg.topology
        if not topology:
            raise PlanError("no --topology and the config sets no `topology`")
        parse_topology(topology)
    except (ConfigOverrideError, PlanError) as e:
        print(f"coderl plan: {e}", file=sys.stderr)
        return 2
    libtpu = find_libtpu()
    if libtpu is None:
        print("coderl plan: libtpu is not installed (pip install 'coderl-jax[tpu]', or `pip install libtpu` at "
              "the version matching jax; or set TPU_LIBRARY_PATH to a libtpu.so)", file=sys.stderr)
        return 2
    if "jax" in sys.modules and os.environ.get("TPU_LIBRARY_PATH") != libtpu:
        print("coderl plan: warning: jax was imported before the plan set TPU_LIBRARY_PATH", file=sys.stderr)
    _prepare_environment(libtpu)
    try:
        rep = plan(cfg, topology, model_config=args.model_config, mfu=args.mfu, hbm_gib=args.hbm_gib,
                   log=lambda msg: print(msg, file=sys.stderr, flush=True))
    except PlanError as e:
        print(f"coderl plan: {e}", file=sys.stderr)
        return 2
    print(format_report(rep, args.config))
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=2) + "\n")
    return 0
