"""`coderl train`: the RL trainer.

    config.py         TrainConfig and its parts (data, rollout, tracer, mesh, eval), validated
    programs.py       builders of the step's jitted programs (update, scoring), shared with `coderl plan`
    phases.py         one step as named phases: prompts, rollout, rewards, harvest, advantages,
                      pack, score, update, metrics (`run_step`)
    hooks.py          the loop, with evaluation, checkpoints and metrics hung on it as hooks
    loop.py           `build_run` (policy, data, sampler, sandbox, restore) and `train`
    checkpointing.py  orbax checkpoints (params, optimizer, step, data position, alignment buffer)
    storage.py        checkpoint locations: gs:// paths, the check that every host sees the directory
    preemption.py     SIGTERM: checkpoint the last completed step and exit within a bound
    isolation.py      `tracer.require_isolation`: refuse to run model-written code without network isolation
    data_setup.py     `prepare_data`: the task suite a config describes, written when a run starts
    metrics.py        metrics.jsonl, TensorBoard, wandb; report.py the end-of-run table and plots
    config_util.py    presets, config files and typed key=value overrides
    cli.py            the command line
"""
