"""`coderl train`: build a run, then run its steps with evaluation, checkpoints and metrics as hooks.

    problems (grain) --> prompts --> sampler (G per prompt) --> tracer rewards --> advantages
        --> trainer's old / reference log-probs --> `updates_per_step` jitted train steps
        --> metrics.jsonl / TensorBoard --> orbax checkpoint (params, optimizer, step, data, buffer)

`build_run` loads the policy, the data, the sampler, the sandbox and the jitted programs and
restores the last checkpoint; `train` hangs evaluation, checkpoints, metrics and the progress bar
on a `TrainLoop` and runs the step of `coderl_jax.train.phases`. A killed run resumed from its
last checkpoint produces the same metrics as one that was never interrupted (timings aside).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from coderl_jax.alignment.probe import load_probe, probe, read_probe_file
from coderl_jax.alignment.task import AlignmentTask
from coderl_jax.parallel.hosts import HostShardedTracer, gather_objects, place
from coderl_jax.rl.rewards import get_reward
from coderl_jax.train import phases
from coderl_jax.train.config import TrainConfig
from coderl_jax.train.data_setup import prepare_data
from coderl_jax.train.hooks import TrainLoop
from coderl_jax.train.phases import Run, encode_prompts, step_seed
from coderl_jax.train.programs import (
    build_reshard, build_sampler, build_scoring, build_update, eval_sampling_params, init_state, optimizer_config,
    reference_params,
)

log = logging.getLogger("coderl_jax.train")


class TrainingStopped(RuntimeError):
    """Raised when repeated non-finite steps stop the run (the last good checkpoint is intact)."""


# ------------------------------------------------------------------------------------------------
# building a run


def make_job_mesh(cfg: TrainConfig):
    """The ("data", "fsdp", "tensor") mesh of `cfg.mesh` over every device of the job, or None on a
    single device (the unsharded path)."""
    if jax.device_count() == 1:
        return None
    from coderl_jax.parallel import make_mesh

    return make_mesh(data=cfg.mesh.data, fsdp=cfg.mesh.fsdp, tensor=cfg.mesh.tensor)


def load_policy(cfg: TrainConfig, mesh=None):
    """(model config, params, tokenizer) from an HF directory, or the built-in tiny random model;
    with a mesh the parameters are placed by the training sharding rules (each host reads only the
    slices its devices hold)."""
    from coderl_jax.models.hf_io import load_hf, load_tokenizer
    from coderl_jax.models.tiny import default_model_dir

    path = default_model_dir() if cfg.model == "tiny-random" else Path(cfg.model)
    model_cfg, params = load_hf(path, mesh=mesh, param_dtype=cfg.param_dtype, dtype=cfg.dtype)
    model_cfg = model_cfg.replace(attention=cfg.attention)
    tokenizer = load_tokenizer(path)
    return model_cfg, params, tokenizer, path


def make_tracer(cfg: TrainConfig):
    """The sandbox: the in-process pool, or a remote service. In a multi-host job each host runs
    its own block of every batch of requests and the results are gathered (HostShardedTracer).

    Checks `tracer.require_isolation` against the sandbox's layers (this host's pool, or what the
    service reports at /healthz) and logs them in one line; a required but missing network
    isolation is an IsolationError (coderl_jax/train/isolation.py)."""
    from coderl_jax.train.isolation import check_isolation, isolation_required

    processes = jax.process_count()
    setting = cfg.tracer.require_isolation
    sandbox, unknown = None, ""
    if cfg.tracer.url:
        from tracer import ServiceError, TracerClient

        tracer = TracerClient(cfg.tracer.url)
        where = f"the tracer service at tracer.url={cfg.tracer.url}"
        try:  # a service that is down and not required to isolate may come up later
            sandbox = tracer.layers(timeout_s=30.0 if isolation_required(setting, processes) else 5.0)
        except ServiceError as e:
            unknown = str(e)
    else:
        from tracer import TracerPool

        tracer = TracerPool(workers=cfg.tracer.workers or None)
        where = "the tracer" + (f" on process {jax.process_index()}" if processes > 1 else "")
        sandbox = tracer.sandbox
    try:
        check_isolation(sandbox, setting=setting, process_count=processes, where=where, log=log,
                        unknown_reason=unknown)
    except Exception:
        tracer.close()
        raise
    return HostShardedTracer(tracer) if processes > 1 else tracer


def gathered_data_state(data_iter):
    """The data position to checkpoint: the iterator's state, or with several processes every
    process's state (a list indexed by process) so that each host resumes its own shard."""
    if jax.process_count() == 1:
        return data_iter.get_state()
    return {"per_process": gather_objects(data_iter.get_state())}


def host_data_state(saved, where) -> dict:
    if isinstance(saved, dict) and "per_process" in saved:
        states = saved["per_process"]
        if len(states) != jax.process_count():
            raise ValueError(f"{where}: the checkpoint was written by {len(states)} processes, this job has "
                             f"{jax.process_count()}; resume with the same number of hosts")
        return states[jax.process_index()]
    if jax.process_count() > 1:
        raise ValueError(f"{where}: the checkpoint holds one data position, this job has {jax.process_count()} "
                         "processes; resume with one host")
    return saved


@dataclasses.dataclass
class Session:
    """A run and the things around it that outlive its steps: where it writes, its checkpoints,
    what it evaluates on."""

    run: Run
    out_dir: Path  # this process's files (process 0: the run's directory)
    checkpoints: object  # Checkpointer
    start_step: int  # the last completed step (0 for a fresh run)
    eval_items: list  # held-out problems for pass@1
    probe_records: list  # held-out programs for the alignment probe
    is_main: bool  # process 0 writes the run's files
    saved_step: int | None = None  # the last step whose checkpoint was started

    def close(self) -> None:
        self.checkpoints.close()
        if hasattr(self.run.tracer, "close"):
            self.run.tracer.close()


def checkpoint_location(cfg: TrainConfig) -> str:
    """`checkpoint_dir` with `{bucket}` filled in, or <out_dir>/checkpoints (a StorageError for a
    template without a bucket or a gs:// out_dir)."""
    from coderl_jax.train.storage import resolve_checkpoint_dir

    return resolve_checkpoint_dir(cfg.checkpoint_dir, bucket=cfg.bucket, out_dir=cfg.out_dir)


def build_run(cfg: TrainConfig) -> Session:
    """Everything a run needs, restored from its last checkpoint when there is one."""
    from coderl_jax.data.pipeline import make_problem_iterator
    from coderl_jax.train.checkpointing import Checkpointer

    # the user's evaluation files first: a broken row stops the run before anything is loaded
    eval_items, probe_rows = [], []
    if cfg.eval.every and cfg.data.eval_path:
        from coderl_jax.eval import load_benchmark

        eval_items = load_benchmark("problems", cfg.data.eval_path, limit=cfg.eval.max_problems)
    if cfg.eval.every and cfg.alignment.probe_path:
        probe_rows = read_probe_file(cfg.alignment.probe_path)

    is_main = jax.process_index() == 0
    # every process holds the same global view of a step; process 0 writes the run's files, the
    # others keep their own evaluation files apart (no two writers of one file on a shared disk)
    out_dir = Path(cfg.out_dir) if is_main else Path(cfg.out_dir) / f"process_{jax.process_index()}"
    out_dir.mkdir(parents=True, exist_ok=True)
    # the checkpoint directory before anything is loaded: a multi-host job whose hosts do not all
    # see it (each host's own disk) stops here (storage.check_shared)
    checkpoints = Checkpointer(checkpoint_location(cfg), keep=cfg.keep_checkpoints, every=cfg.checkpoint_every,
                               async_save=cfg.async_checkpointing)
    # the sandbox next, before minutes of model loading: a required but missing isolation layer stops here
    tracer = make_tracer(cfg)
    mesh = make_job_mesh(cfg)
    model_cfg, params, tokenizer, _ = load_policy(cfg, mesh)
    if is_main:
        (out_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")

    r = cfg.rollout
    program = build_update(cfg, model_cfg, mesh)
    state = init_state(program, params)
    # the reference policy is the starting one, also when the run resumes from a later step
    ref_params = reference_params(cfg, state.params) if cfg.loss.kl_coef else None
    problems = make_problem_iterator(  # one problem per next(); each process reads its own shard
        cfg.data.train_path, split="train", seed=cfg.seed, shuffle=cfg.data.shuffle,
        data_dir=cfg.data.data_dir or None, tokenizer=tokenizer, max_prompt_tokens=cfg.data.max_prompt_tokens,
        system=cfg.data.system_prompt, raw_prompts=cfg.data.raw_prompts)
    align = AlignmentTask(cfg.alignment, tokenizer, prompts_per_step=r.prompts_per_step, group_size=r.group_size,
                          seed=cfg.seed, encode_prompts=lambda texts: encode_prompts(texts, tokenizer, cfg),
                          max_prompt_tokens=cfg.data.max_prompt_tokens)

    checkpoints.write_model_config(model_cfg.to_hf())
    checkpoints.write_tokenizer(tokenizer)
    start_step = 0
    if checkpoints.latest_step() is not None:
        restored = checkpoints.restore(params_like=state.params, opt_state_like=state.opt_state)
        start_step = restored["step"]
        updates = np.asarray(restored["extra"].get("updates", 0), np.int32)
        state = state._replace(params=restored["params"], opt_state=restored["opt_state"],
                               step=jnp.asarray(updates) if mesh is None else place(updates, state.step.sharding))
        problems.set_state(host_data_state(restored["data_state"], checkpoints.directory))
        align.restore(restored["alignment"])
        log.info("resumed from step %d", start_step)

    max_len = cfg.data.max_prompt_tokens + r.max_new_tokens
    run = Run(cfg=cfg, state=state, tokenizer=tokenizer, problems=problems, sampler=None,
              reward_fn=get_reward(cfg.tracer.reward), tracer=tracer, update_fn=program.step_fn,
              score_fn=build_scoring(cfg, model_cfg, program), lr_schedule=_lr_schedule(cfg),
              ref_params=ref_params,
              max_len=max_len, align=align, batch_sharding=program.batch_sharding)
    run.reshard_fn = build_reshard(cfg, model_cfg, mesh)
    run.sampler = build_sampler(cfg, model_cfg, run.sampling_params, tokenizer, mesh)

    probe_records = load_probe(probe_rows, cfg, tracer, align) if probe_rows else []
    return Session(run=run, out_dir=out_dir, checkpoints=checkpoints, start_step=start_step,
                   eval_items=eval_items, probe_records=probe_records, is_main=is_main)


def _lr_schedule(cfg: TrainConfig):
    from coderl_jax.optim import learning_rate_schedule

    return learning_rate_schedule(optimizer_config(cfg))  # the optimizer's own schedule, for logging


# ------------------------------------------------------------------------------------------------
# running it


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) training; returns the last step's metrics.

    On SIGTERM (`preemption_timeout_s` > 0) it checkpoints the last completed step and raises
    `Preempted` (a SystemExit with status 75) within that many seconds; past them the process ends
    with status 76 (coderl_jax/train/preemption.py)."""
    from coderl_jax.train.preemption import StopSignal

    stop = StopSignal.install(cfg.preemption_timeout_s)
    try:
        return _train(cfg, stop)
    finally:
        stop.uninstall()


def use_compile_cache(directory: str) -> None:
    """Point XLA's persistent compilation cache at `directory` (a local path or a URL such as
    gs://BUCKET/xla) before the run's first compile; "" leaves the process's setting. The cache is
    keyed by program and compiler settings, so it never changes a result."""
    if directory:
        jax.config.update("jax_compilation_cache_dir", directory)
        log.info("compilation cache: %s", directory)


def _train(cfg: TrainConfig, stop) -> dict:
    from coderl_jax.train.metrics import MetricsWriter

    cfg = prepare_data(cfg).validate()  # a suite the config describes is written now, not when it loads
    use_compile_cache(cfg.compile_cache_dir)
    session = build_run(cfg)
    run = session.run
    if stop.agreed():  # told to stop while starting: nothing new to save
        session.close()
        raise preempted(session, session.start_step or None)
    # a fresh run (nothing restored) starts its metrics over, step-0 evaluation included
    writer = MetricsWriter(session.out_dir, resume_step=session.start_step if session.start_step else -1,
                           tensorboard=cfg.tensorboard, wandb_project=cfg.wandb_project or None,
                           run_config=dataclasses.asdict(cfg), is_main=session.is_main)
    loop = TrainLoop(lambda step: phases.run_step(run, step), first_step=session.start_step + 1,
                     last_step=cfg.steps)
    loop.add_hook(stop_on_nonfinite(cfg.max_skipped_steps, session.checkpoints), every=1)
    if cfg.eval.every:
        loop.add_hook(lambda step, _: evaluate_policy(session, step), every=cfg.eval.every,
                      at_start=cfg.eval.at_start)
    loop.add_hook(lambda step, _: save_checkpoint(session, step), every=cfg.checkpoint_every)
    loop.add_sink(writer.write)
    bar = progress_bar(cfg, session) if cfg.progress and session.is_main else None
    if bar is not None:
        loop.add_sink(bar)
    loop.add_sink(stop_on_signal(session, stop, cfg.steps))  # last: the step's row is written before it stops
    try:
        last = loop.run()
        session.checkpoints.wait()
    finally:
        if bar is not None:
            bar.close()
        writer.close()
        session.close()
    return last


def stop_on_nonfinite(limit: int, checkpoints):
    """A hook that stops the run after `limit` consecutive steps whose updates were skipped as
    non-finite."""
    in_a_row = 0

    def check(step: int, m: dict) -> None:
        nonlocal in_a_row
        in_a_row = in_a_row + 1 if m["skipped"] else 0
        if in_a_row >= limit:
            raise TrainingStopped(f"step {step}: {in_a_row} consecutive non-finite updates; "
                                  f"the last good checkpoint is step {checkpoints.latest_step()}")

    return check


def stop_on_signal(session: Session, stop, last_step: int):
    """A sink (after the metrics writer) that ends the run when any process received SIGTERM: it
    saves the step just completed unless its checkpoint was already started, waits for the save and
    raises Preempted. Every process gathers the flags after every step (one small collective), so
    all of them stop after the same step. After the last step the run simply ends (its checkpoint
    is the final one)."""

    def check(step: int, row: dict) -> None:
        if not stop.agreed() or step == last_step:
            return
        if step > session.start_step and session.saved_step != step:
            save_checkpoint(session, step)
        session.checkpoints.wait()
        raise preempted(session, step if step > session.start_step else (session.start_step or None))

    return check


def preempted(session: Session, step: int | None):
    from coderl_jax.train.preemption import EXIT_PREEMPTED, Preempted

    where = session.checkpoints.directory
    if step is None:
        message = "stopped on SIGTERM before the first checkpoint; running the same command starts over"
    else:
        message = (f"stopped on SIGTERM after step {step}; its checkpoint is {where}/{step}; run the same "
                   f"command to resume")
    log.warning("%s (exit status %d)", message, EXIT_PREEMPTED)
    return Preempted(step, message)


def save_checkpoint(session: Session, step: int) -> dict:
    """Parameters, optimizer state, the data position and the alignment buffer of `step`."""
    run = session.run
    t0 = time.perf_counter()
    session.saved_step = step
    session.checkpoints.save(step, params=run.state.params, opt_state=run.state.opt_state,
                             rng=jax.random.key(run.cfg.seed), data_state=gathered_data_state(run.problems),
                             alignment_state=run.align.state() if run.align.enabled else None,
                             extra={"updates": int(run.state.step)}, force=True)
    return {"time/checkpoint_s": time.perf_counter() - t0}


def evaluate_policy(session: Session, step: int) -> dict:
    """Held-out pass@1 and the alignment probe of the current policy."""
    run, cfg = session.run, session.run.cfg
    t0 = time.perf_counter()
    m = heldout_pass_at_1(run.sampler, session.eval_items, run.tokenizer, cfg, run.tracer, step,
                          session.out_dir) if session.eval_items else {}
    if session.probe_records:
        params = run.state.params
        m.update(probe(session.probe_records, align=run.align, tokenizer=run.tokenizer, sampler=run.sampler,
                       loglik_fn=lambda rows: run.logprobs(params, rows)[0],
                       max_new_tokens=cfg.rollout.max_new_tokens, stop=tuple(cfg.rollout.stop), seed=step))
    m["time/eval_s"] = time.perf_counter() - t0
    return m


def progress_bar(cfg: TrainConfig, session: Session):
    """A sink that advances a tqdm bar by one step and shows the step's reward, loss, KL and length."""
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=session.start_step, desc="coderl train", dynamic_ncols=True)

    def show(step: int, m: dict) -> None:
        if step == 0:  # the starting policy's evaluation is not a step
            return
        bar.update(1)
        nan = float("nan")  # a step without an update (alignment-only step 1) has no actor/ metrics
        bar.set_postfix(reward=f"{m['reward/mean']:.3f}", loss=f"{m.get('actor/loss', nan):.4f}",
                        kl=f"{m.get('actor/kl_loss', nan):.4f}", len=f"{m['response/length_mean']:.0f}")

    show.close = bar.close
    return show


# ------------------------------------------------------------------------------------------------
# evaluation (the same sampler and reward as training; the eval module reuses this contract)


def heldout_pass_at_1(sampler, items, tokenizer, cfg: TrainConfig, tracer, step: int,
                      out_dir: Path | None = None) -> dict:
    """Periodic evaluation through `coderl_jax.eval` (the same code as `coderl eval`): pass@1 on the
    held-out problems, written under `<out_dir>/eval/step_<step>/` (resumable)."""
    from coderl_jax.eval import SamplerGenerator, evaluate as eval_benchmark, settings_for

    sp = eval_sampling_params(cfg, step_seed(cfg.seed, step, 7))  # what `coderl plan` sizes
    settings = settings_for("problems", n=sp.n, k=(1,), temperature=sp.temperature, top_p=sp.top_p,
                            max_new_tokens=sp.max_new_tokens, seed=sp.seed, raw_prompt=cfg.data.raw_prompts,
                            system=cfg.data.system_prompt, stop=sp.stop, timeout_s=cfg.tracer.timeout_s,
                            batch_size=max(len(items), 1))
    generator = SamplerGenerator(sampler, tokenizer, identity={"run": str(Path(cfg.out_dir).absolute())})
    out_dir = Path(cfg.out_dir) if out_dir is None else out_dir
    summary = eval_benchmark("problems", items, generator, tracer, out_dir / "eval" / f"step_{step}",
                             settings, data_path=cfg.data.eval_path, progress=False)
    return {"eval/pass@1": float(summary["pass@1"]), "eval/problems": len(items)}
