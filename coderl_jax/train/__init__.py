"""`coderl train`: the RL trainer.

    config.py         TrainConfig and its parts (data, rollout, tracer, mesh, eval), validated
    programs.py       builders of the step's jitted programs (update, scoring), shared with `coderl plan`
    phases.py         one step as named phases: prompts, rollout, rewards, harvest, advantages,
                      pack, score, update, metrics (`run_step`)
    hooks.py          the loop, with evaluation, checkpoints and metrics hung on it as hooks
    loop.py           `build_run` (policy, data, sampler, sandbox, restore) and `train`
    checkpointing.py  orbax checkpoints (params, optimizer, step, data position, alignment buffer)
    metrics.py        metrics.jsonl, TensorBoard, wandb; report.py the end-of-run table and plots
    config_util.py    presets, config files and typed key=value overrides
    cli.py            the command line
"""
