"""`coderl plan --config F [--topology v5p:2x4x4]`: prove that a pod configuration fits before renting it.

The programs a training step runs on the accelerators are compiled ahead of time for the TPU
topology, on this (CPU) machine. They come from the builders `coderl train` uses
(`train.programs.StepPrograms`), and a test checks that the programs a run calls lower to the same
text as the plan's:

  rollout  the trainer's decode (`generate_tokens`, or `generate_refill` through
           `rollout.decode_slots` rows) for `rollout.prompts_per_generate` prompts x `group_size`
           samples, on the sampling copy (`rollout.dtype`, laid out by the sampling rules, no fsdp
           split), with the trainer's decode loops (`decode_chunk`, `decode_unroll`), layers scanned
           as on the accelerator, for the longest prompt bucket (the others are listed);
  reshard  the trainer's parameters -> the sampling copy;
  scoring  the old / reference log-probs (`sequence_logprobs`) of one micro-batch of rows;
  update   the sharded train step (`make_sharded_train_step`) on one mini-batch, its micro-batches
           accumulated inside the step, the state donated.

libtpu provides the compiler: `jax.experimental.topologies.get_topology_desc` returns compile-only
devices for a topology name, so no TPU is needed. Nothing is materialised: parameters, optimizer
state and batches are `jax.ShapeDtypeStruct`s with shardings.

Memory. Between the programs the train state (parameters + optimizer state) and, with a KL term,
the reference parameters stay resident; each program adds what XLA's memory analysis reports for it
beyond that (its other arguments, outputs not aliased to donated inputs, temporaries). A phase fits
when resident + added <= the chip's HBM; the step fits when every phase does.

FLOPs. From XLA's cost analysis, per chip. XLA counts the body of a loop once, so the update's
count (a scan over micro-batches) is multiplied by `micro_batches`; the sampler's loops (one
decode step per token) are counted analytically instead (2 x parameters + attention per token),
and its time is also bounded from below by reading the weights and the KV cache from HBM once per
decode step (through refilled rows, counting every sequence at the cap: an upper bound on steps).
The step time is FLOPs / (chips x peak x MFU) plus that bandwidth bound.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import os
import re
import time
from pathlib import Path

from coderl_jax.errors import UserError

GIB = 1024**3
# the paper models' config.json stubs ship in the package with the presets (coderl_jax/configs/models)
MODELS_DIR = Path(str(importlib.resources.files("coderl_jax.configs") / "models"))


@dataclasses.dataclass(frozen=True)
class Chip:
    name: str
    hbm_gib: float  # per chip
    peak_bf16_tflops: float  # per chip, dense
    hbm_gbps: float  # per chip, GB/s


# Per-chip figures from Cloud TPU's published system specs (HBM capacity and bandwidth, bf16 peak).
CHIPS = {
    "v4": Chip("TPU v4", 32, 275, 1228),
    "v5e": Chip("TPU v5e", 16, 197, 819),
    "v5p": Chip("TPU v5p", 95, 459, 2765),
    "v6e": Chip("TPU v6e (Trillium)", 32, 918, 1640),
}
# accelerator types (gcloud's names; v4 / v5p count TensorCores, two per chip) -> topology names
ACCELERATOR_TYPES = {
    "v5p-8": "v5p:2x2x1", "v5p-16": "v5p:2x2x2", "v5p-32": "v5p:2x2x4", "v5p-64": "v5p:2x4x4",
    "v5p-128": "v5p:4x4x4", "v5p-256": "v5p:4x4x8",
    "v6e-1": "v6e:1x1", "v6e-4": "v6e:2x2", "v6e-8": "v6e:2x4", "v6e-16": "v6e:4x4", "v6e-32": "v6e:4x8",
    "v6e-64": "v6e:8x8", "v6e-128": "v6e:8x16", "v6e-256": "v6e:16x16",
    "v5litepod-4": "v5e:2x2", "v5litepod-8": "v5e:2x4", "v5litepod-16": "v5e:4x4", "v5litepod-64": "v5e:8x8",
    "v4-8": "v4:2x2x1", "v4-16": "v4:2x2x2", "v4-32": "v4:2x2x4",
}


class PlanError(UserError, ValueError):
    pass


def parse_topology(name: str) -> tuple[str, Chip, int]:
    """(libtpu topology name, chip, number of chips) for "v5p:2x4x4" or an accelerator type "v5p-64"."""
    name = ACCELERATOR_TYPES.get(name, name)
    m = re.fullmatch(r"(v4|v5e|v5p|v6e):(\d+(?:x\d+)+)", name)
    if not m:
        raise PlanError(f"topology {name!r}: expected e.g. v5p:2x4x4, v6e:8x8, v5e:4x4 or an accelerator type "
                        f"({', '.join(sorted(ACCELERATOR_TYPES))})")
    return name, CHIPS[m.group(1)], math.prod(int(x) for x in m.group(2).split("x"))


def find_libtpu() -> str | None:
    """Path of libtpu.so: $TPU_LIBRARY_PATH, else the installed `libtpu` package."""
    path = os.environ.get("TPU_LIBRARY_PATH")
    if path and Path(path).exists():
        return path
    import importlib.util

    spec = importlib.util.find_spec("libtpu")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        candidate = Path(loc) / "libtpu.so"
        if candidate.exists():
            return str(candidate)
    return None


def model_config_path(model: str) -> Path:
    """The config.json describing `model`: its own (a local HF directory), else the one shipped under
    coderl_jax/configs/models/<basename> (the paper's models, whose weights are not needed to plan)."""
    own = Path(model).expanduser() / "config.json"
    if own.exists():
        return own
    shipped = MODELS_DIR / Path(model.rstrip("/")).name / "config.json"
    if shipped.exists():
        return shipped
    raise PlanError(f"model {model!r}: no config.json there nor under {MODELS_DIR}/<name>/ "
                    f"(pass --model-config FILE)")


# ------------------------------------------------------------------------------------------------
# The three programs


def _abstract(tree, shardings):
    import jax

    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), tree, shardings)


def _per_chip_bytes(tree) -> int:
    """Bytes of one device's shard of every leaf (ShapeDtypeStructs with NamedShardings)."""
    import jax
    import numpy as np

    total = 0
    for leaf in jax.tree.leaves(tree):
        shape = leaf.sharding.shard_shape(leaf.shape)
        total += int(np.prod(shape, dtype=np.int64)) * np.dtype(leaf.dtype).itemsize
    return total


def _mem(compiled) -> dict:
    ma = compiled.memory_analysis()
    return {"arguments": ma.argument_size_in_bytes, "outputs": ma.output_size_in_bytes,
            "aliased": ma.alias_size_in_bytes, "temporaries": ma.temp_size_in_bytes,
            "code": ma.generated_code_size_in_bytes}


def _flops(compiled) -> float:
    ca = compiled.cost_analysis()
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else {}
    return float((ca or {}).get("flops", 0.0))


def sampler_flops_per_token(model_cfg, context: float) -> float:
    """Forward FLOPs of one token attending to `context` slots on average (a decode token: its
    cache; a packed row of L tokens under the causal mask: L / 2)."""
    n, d, layers = model_cfg.num_heads, model_cfg.head_dim, model_cfg.num_layers
    matmul = 2 * (model_cfg.num_params() - model_cfg.vocab_size * model_cfg.hidden_size)  # no embedding lookup
    if model_cfg.tie_word_embeddings:
        matmul += 2 * model_cfg.vocab_size * model_cfg.hidden_size  # the tied head is still a matmul
    return matmul + 4 * layers * n * d * context


def plan(cfg, topology: str, *, model_config: str | None = None, mfu: float = 0.4, hbm_gib: float | None = None,
         log=print) -> dict:
    """Compile the rollout, scoring and update programs of `cfg` for `topology`; returns the report."""
    import jax.numpy as jnp
    from jax.experimental import topologies

    from coderl_jax.models import blocked_attention, transformer
    from coderl_jax.models.config import ModelConfig
    from coderl_jax.parallel.mesh import data_parallel_size, make_mesh
    from coderl_jax.sampling.sampler import cache_slots
    from coderl_jax.train.programs import StepPrograms

    topo_name, chip, chips = parse_topology(topology)
    hbm = (hbm_gib or chip.hbm_gib) * GIB
    path = Path(model_config) if model_config else model_config_path(cfg.model)
    model_cfg = ModelConfig.from_file(path, param_dtype=cfg.param_dtype, dtype=cfg.dtype, attention=cfg.attention)
    devices = topologies.get_topology_desc(platform="tpu", topology_name=topo_name).devices
    if len(devices) != chips:
        raise PlanError(f"topology {topo_name}: libtpu gave {len(devices)} devices, expected {chips}")
    mesh = make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor, devices=devices)
    groups = data_parallel_size(mesh)
    r = cfg.rollout
    rows = r.prompts_per_step * r.group_size
    mini_rows = rows // cfg.updates_per_step
    micro_rows = mini_rows // cfg.micro_batches
    length = cfg.data.max_prompt_tokens + r.max_new_tokens
    per_generate = r.prompts_per_generate or r.prompts_per_step
    if micro_rows % groups:
        raise PlanError(f"a micro-batch of {micro_rows} rows does not split over the {groups} data-parallel groups "
                        f"of mesh {dict(mesh.shape)}")
    if per_generate % groups:
        raise PlanError(f"rollout.prompts_per_generate={per_generate} does not split over the {groups} "
                        f"data-parallel groups of mesh {dict(mesh.shape)}")
    report = {"topology": topo_name, "chip": chip.name, "chips": chips, "hbm_gib": hbm / GIB,
              "model_config": str(path), "params": model_cfg.num_params(), "mesh": dict(mesh.shape),
              "rows_per_step": rows, "mini_batch_rows": mini_rows, "micro_batch_rows": micro_rows,
              "sequence_length": length, "prompts_per_generate": per_generate, "mfu": mfu, "programs": {}}

    # every program from the builders `coderl train` uses (train/programs.py)
    progs = StepPrograms(cfg, model_cfg, mesh, backend="tpu")
    params_abs, opt_abs = progs.state.params, progs.state.opt_state
    param_bytes = _per_chip_bytes(params_abs)
    opt_bytes = _per_chip_bytes(opt_abs)
    ref_bytes = _per_chip_bytes(progs.ref_params) if cfg.loss.kl_coef else 0
    resident = param_bytes + opt_bytes + ref_bytes
    report["resident"] = {"params": param_bytes, "optimizer": opt_bytes, "reference_params": ref_bytes}

    def compile_program(name, call, *, resident_args: int):
        fn, args, kwargs = call
        t0 = time.perf_counter()
        log(f"compiling {name} ...")
        with transformer.compiling_for("tpu"):  # the TPU layouts, not this CPU host's
            lowered = fn.lower(*args, **kwargs)
            compiled = lowered.compile()
        mem = _mem(compiled)
        added = mem["arguments"] - resident_args + mem["outputs"] - mem["aliased"] + mem["temporaries"]
        report["programs"][name] = {**mem, "added": added, "peak": resident + added, "flops": _flops(compiled),
                                    "compile_s": time.perf_counter() - t0,
                                    # Pallas (Mosaic) kernels in the program: the splash attention
                                    "pallas_kernels": lowered.as_text().count("tpu_custom_call")}
        return report["programs"][name]

    # the packed lengths a run compiles the update and scoring for: the declared ones (code and
    # alignment rows in one array of `mini_rows`), else each task's powers of two from 128
    declared = list(cfg.packed_lengths)
    lengths = declared or sorted({min(128 << i, length) for i in range(length.bit_length())
                                  if (128 << i) // 2 < length}) or [length]
    length = lengths[-1]
    report["sequence_length"] = length
    with transformer.compiling_for("tpu"):  # the shorter lengths are lowered: valid programs, counted
        for n in lengths[:-1]:
            for fn, args, kwargs in (progs.update_call([(mini_rows, n)]), progs.scoring_call(micro_rows, n)):
                fn.lower(*args, **kwargs)
    report["packed_lengths"] = {"declared": bool(declared), "lengths": lengths}
    report["attention"] = blocked_attention.kernel_for("tpu", length, model_cfg.head_dim, model_cfg.jnp_dtype,
                                                       model_cfg.attention)

    # update: the sharded train step on one mini-batch at the longest length
    upd = compile_program("update", progs.update_call([(mini_rows, length)]),
                          resident_args=param_bytes + opt_bytes + 4)
    # analytic: XLA's cost analysis counts a loop's body once (the layer scan, the micro-batch scan)
    # and sees no FLOPs in a Pallas kernel. Every row runs at the packed length (padding included);
    # backward = 2 x forward, and remat recomputes the forward once more
    row_flops = length * sampler_flops_per_token(model_cfg, length / 2)
    upd["flops_per_call"] = mini_rows * row_flops * (4 if cfg.loss.remat else 3) / chips
    upd["calls"] = cfg.updates_per_step

    # scoring: old (and reference) log-probs, one micro-batch of rows per call
    sc = compile_program("scoring", progs.scoring_call(micro_rows, length), resident_args=param_bytes)
    sc["flops_per_call"] = micro_rows * row_flops / chips
    sc["calls"] = (rows // micro_rows) * (2 if cfg.loss.kl_coef else 1)

    # reshard: the trainer's parameters -> the sampling copy, as the loop makes it before each rollout
    rs = compile_program("reshard", progs.reshard_call(), resident_args=param_bytes)
    rs["flops_per_call"], rs["calls"] = 0.0, 1

    # rollout: the trainer's decode on the sampling copy (the sampling layout, `rollout.dtype`), for
    # the longest prompt bucket; the shorter buckets a run may also compile are counted below
    sample_params = progs.sample_params
    buckets = progs.sampler.prompt_lengths(r.max_new_tokens, upto=cfg.data.max_prompt_tokens)
    p_len = buckets[-1]
    rollout_fn, rollout_args, rollout_kwargs = progs.rollout_call(per_generate, p_len)
    spec = rollout_kwargs["spec"]
    ro = compile_program("rollout", (rollout_fn, rollout_args, rollout_kwargs), resident_args=0)
    ro["decode"] = rollout_fn.__name__
    if cfg.eval.every:  # the held-out evaluation's generation: every problem in one call
        ev = compile_program("eval", progs.eval_call(cfg.eval.max_problems, p_len), resident_args=0)
        ev["flops_per_call"], ev["calls"] = 0.0, 0  # not part of a step's time
    report["rollout_prompt_buckets"] = buckets
    report["rollout_prompt_buckets_declared"] = bool(r.prompt_buckets)
    n_len = len(report["packed_lengths"]["lengths"])
    update_programs = n_len if declared else n_len * (n_len + 1) // 2 + n_len  # a pair of lengths, or one task
    ref_differs = cfg.loss.kl_coef and ref_bytes != param_bytes  # a second scoring program, for the reference
    report["programs_to_compile"] = {"rollout": len(buckets), "reshard": 1, "scoring": n_len * (2 if ref_differs else 1),
                                     "update": update_programs, "eval": len(buckets) if cfg.eval.every else 0}
    gen_rows = per_generate * r.group_size
    # the decode cache: every row at once, or `decode_slots` refilled rows of a full-length cache
    decode_rows, cache_len = rollout_kwargs.get("slots", gen_rows), cache_slots(p_len, spec)
    if "slots" in rollout_kwargs:
        cache_len = p_len + r.max_new_tokens
    kv_total = (2 * model_cfg.num_layers * decode_rows * cache_len * model_cfg.num_kv_heads * model_cfg.head_dim
                * jnp.dtype(r.cache_dtype).itemsize)
    kv_split = groups * (mesh.shape["tensor"] if model_cfg.num_kv_heads % mesh.shape["tensor"] == 0 else 1)
    ro["kv_cache"] = kv_total // kv_split
    ro["sampler_params"] = _per_chip_bytes(sample_params)
    ro["calls"] = -(-r.prompts_per_step // per_generate)
    ctx_avg = p_len + r.max_new_tokens / 2
    ro["flops_per_call"] = (gen_rows * r.max_new_tokens * sampler_flops_per_token(model_cfg, ctx_avg)
                            + 2 * per_generate * p_len * sampler_flops_per_token(model_cfg, p_len / 2)) / chips
    # each decode step reads the chip's weights once and, on average, half of its final KV cache
    # decode steps per call: max_new_tokens for rows decoding at once; through refilled rows, at most
    # (rows / decode rows) x max_new_tokens, every sequence running to the cap (fewer when most end early)
    ro["decode_steps_per_call"] = r.max_new_tokens * -(-gen_rows // decode_rows)
    ro["hbm_s_per_call"] = (ro["decode_steps_per_call"] * (ro["sampler_params"] + ro["kv_cache"] / 2)
                            / (chip.hbm_gbps * 1e9))

    peak = max(p["peak"] for p in report["programs"].values())
    rate = chip.peak_bf16_tflops * 1e12 * mfu  # FLOP/s per chip
    per_chip = {k: p["flops_per_call"] * p["calls"] for k, p in report["programs"].items()}
    rollout_hbm_s = ro["hbm_s_per_call"] * ro["calls"]
    step_s = (per_chip["update"] + per_chip["scoring"]) / rate + max(per_chip["rollout"] / rate, rollout_hbm_s)
    report.update(peak=peak, fits=peak <= hbm, flops_per_step_per_chip=sum(per_chip.values()),
                  flops_per_step=sum(per_chip.values()) * chips, step_s_compute=sum(per_chip.values()) / rate,
                  step_s_rollout_hbm_bound=rollout_hbm_s, step_s=step_s)
    return report


# ------------------------------------------------------------------------------------------------
# Output


def _lengths_line(packed: dict) -> str:
    if packed["declared"]:
        return (f"update and scoring: one program each per declared packed length {packed['lengths']}, code and "
                f"alignment rows in one array (the longest compiled above, the others lowered)")
    return (f"update and scoring: packed lengths not declared; each task's rows take one of {packed['lengths']}, so "
            f"a run may compile an update per pair of lengths (packed_lengths declares at most 3)")


ATTENTION_LINES = {"splash": "splash (blocked, no [L, L] scores in memory)",
                   "xla": "XLA (scores [rows, heads, L, L] per layer; `attention=xla`, or L or head_dim not a "
                          "multiple of 128)"}


def format_report(rep: dict, config_name: str) -> str:
    progs = rep["programs"]
    res = rep["resident"]
    unit, scale = ("GiB", GIB) if rep["peak"] >= GIB else ("MiB", 1024**2)

    def _g(b) -> str:
        return f"{b / scale:7.2f}"
    lines = [
        f"coderl plan: {config_name} on {rep['topology']} ({rep['chips']} chips, {rep['chip']}, "
        f"{rep['hbm_gib']:.0f} GiB HBM per chip)",
        f"model: {rep['model_config']} ({rep['params'] / 1e9:.2f}B parameters); mesh {rep['mesh']}",
        f"step: {rep['rows_per_step']} rows of {rep['sequence_length']} tokens; rollout {rep['prompts_per_generate']}"
        f" prompts per sampler call; update mini-batch {rep['mini_batch_rows']} rows, micro-batch "
        f"{rep['micro_batch_rows']} rows",
        "",
        f"per-chip memory, {unit} (XLA memory analysis)      rollout  scoring   update",
        f"  parameters (resident)                        {_g(res['params'])}  {_g(res['params'])}  {_g(res['params'])}",
        f"  optimizer state (resident)                   {_g(res['optimizer'])}  {_g(res['optimizer'])}  "
        f"{_g(res['optimizer'])}",
        f"  reference parameters for KL (resident)       {_g(res['reference_params'])}  "
        f"{_g(res['reference_params'])}  {_g(res['reference_params'])}",
        f"  sampler copy (rollout.dtype, no fsdp)        {_g(progs['rollout']['sampler_params'])}        -        -",
        f"  KV cache (part of the temporaries below)     {_g(progs['rollout']['kv_cache'])}        -        -",
        "  batch arguments + outputs                    "
        + "  ".join(_g(progs[k]['added'] - progs[k]['temporaries'] - progs[k].get('sampler_params', 0))
                    for k in ("rollout", "scoring", "update")),
        "  temporaries (activations, gradients, cache)  "
        + "  ".join(_g(progs[k]['temporaries']) for k in ("rollout", "scoring", "update")),
        "  peak                                         "
        + "  ".join(_g(progs[k]['peak']) for k in ("rollout", "scoring", "update")),
        f"  (the reshard that makes the sampler copy peaks at {_g(progs['reshard']['peak']).strip()}"
        + (f"; the evaluation's generation at {_g(progs['eval']['peak']).strip()})" if "eval" in progs else ")"),
        "",
        f"fits: {'YES' if rep['fits'] else 'NO'} (peak {rep['peak'] / GIB:.2f} GiB of {rep['hbm_gib']:.0f} GiB, "
        f"{100 * rep['peak'] / (rep['hbm_gib'] * GIB):.0f}%)",
        f"FLOPs per step: {rep['flops_per_step']:.3e} ({rep['flops_per_step_per_chip']:.3e} per chip): update "
        f"{progs['update']['flops_per_call'] * progs['update']['calls'] * rep['chips']:.2e}, scoring "
        f"{progs['scoring']['flops_per_call'] * progs['scoring']['calls'] * rep['chips']:.2e}, "
        f"rollout {progs['rollout']['flops_per_call'] * progs['rollout']['calls'] * rep['chips']:.2e} (analytic: "
        f"2 x weights + causal attention per token, backward 2 x forward, remat one forward more)",
        f"step time at {rep['mfu']:.0%} MFU: {rep['step_s']:.1f} s (all FLOPs at {rep['mfu']:.0%} MFU: "
        f"{rep['step_s_compute']:.1f} s; the rollout is bounded below by its HBM reads, "
        f"{rep['step_s_rollout_hbm_bound']:.1f} s)",
        "compile s (on this host, not a TPU host): " + ", ".join(f"{k} {v['compile_s']:.0f}" for k, v in progs.items()),
        f"rollout: {progs['rollout']['decode']} for the longest prompt bucket; a run may compile one rollout per "
        f"prompt bucket {rep['rollout_prompt_buckets']}" + ("" if rep["rollout_prompt_buckets_declared"] else
                                                             " (rollout.prompt_buckets fixes them)"),
        _lengths_line(rep["packed_lengths"]),
        f"attention in update and scoring: {ATTENTION_LINES[rep['attention']]} (Pallas kernels in the update: "
        f"{progs['update']['pallas_kernels']}, in scoring: {progs['scoring']['pallas_kernels']})",
        f"programs a run compiles: {rep['programs_to_compile']}",
    ]
    return "\n".join(lines)
