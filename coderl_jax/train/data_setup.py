"""Make a config's described data real: `prepare_data(cfg)` writes the embedded task suite that
`cfg.data.suite` describes into the cache and returns the config with concrete paths.

Loading a config writes nothing; the commands that read data call this first (`train()`, `coderl
ablate`'s held-out scoring). It is idempotent (files whose bytes would not change are left alone, and
a config whose paths are all set is returned as is) and a no-op for a config without a suite.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from coderl_jax.cache import cache_root
from coderl_jax.train.config import SuiteDataConfig, TrainConfig

DEFAULT_SUITE = SuiteDataConfig()


def suite_dir(suite: SuiteDataConfig) -> Path:
    """Where `suite` is written: <cache>/suite_seed<seed>, with _<n_train>_<n_heldout> appended when
    the sizes are not the default 3,000 / 300. The sft / rl splits of `rl_reserve` share it."""
    name = f"suite_seed{suite.seed}"
    if (suite.n_train, suite.n_heldout) != (DEFAULT_SUITE.n_train, DEFAULT_SUITE.n_heldout):
        name += f"_{suite.n_train}_{suite.n_heldout}"
    return cache_root() / name


def prepare_data(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with the suite written and its empty data paths filled (train_path: the split
    `suite.train_split`; eval_path: the held-out split; alignment.probe_path: probe.jsonl). Paths set
    explicitly (a preset's or an override's) are kept."""
    suite = cfg.data.suite
    if suite is None:
        return cfg
    wants_probe = bool(suite.probe_programs) and not cfg.alignment.probe_path
    if cfg.data.train_path and cfg.data.eval_path and not wants_probe:
        return cfg  # already prepared, or every path given explicitly
    from coderl_jax.data.readers import read_problems
    from coderl_jax.data.suite import write_probe, write_suite

    out = suite_dir(suite)
    paths = write_suite(out, seed=suite.seed, n_train=suite.n_train, n_heldout=suite.n_heldout,
                        rl_reserve=suite.rl_reserve)
    if suite.train_split not in paths:
        raise ValueError(f"config: data.suite.train_split={suite.train_split!r}: the suite has the splits "
                         f"{', '.join(sorted(paths))} (sft / rl need data.suite.rl_reserve > 0)")
    data = dataclasses.replace(cfg.data, train_path=cfg.data.train_path or paths[suite.train_split],
                               eval_path=cfg.data.eval_path or paths["heldout"])
    alignment = cfg.alignment
    if wants_probe:
        heldout, _ = read_problems(paths["heldout"])
        rule = alignment.record_input  # one file per rule: runs with either rule can share the cache
        name = "probe.jsonl" if rule == "first" else f"probe_{rule}.jsonl"
        alignment = dataclasses.replace(alignment, probe_path=write_probe(out / name, heldout, suite.probe_programs,
                                                                          record_input=rule))
    return dataclasses.replace(cfg, data=data, alignment=alignment)
