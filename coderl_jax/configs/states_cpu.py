"""CodeRL+ on easier alignment records: `coderl train --config states_cpu`. It is the embedded
default (default_cpu: CodeRL+, 40 steps of 8 prompts x 4 samples, lr 5e-5) with alignment records
that ask only about short values, and a warm start trained on such records:

- policy: coderl_jax/configs/models/coderl-tiny-states, coderl-tiny-steps continued for two more
  supervised phases on records whose values and outputs render in at most 8 characters, the
  second also on its own failed programs (`coderl sft --align-own-samples 2`; docs/models.md);
  greedy, it gets ~35% of items right on held-out reference programs and on its own failed
  programs, where coderl-tiny-steps gets 29% and 10% under the same filters;
- alignment: only values of at most 8 characters are asked about and programs that print more
  are not harvested (`alignment.max_value_chars=8`, `alignment.max_output_chars=8`): a 3.2M policy
  states short values far better than lists (docs/findings.md);
- probe: the first 100 of the 300 held-out programs whose outputs pass the same filter.

In 40 steps from this warm start neither held-out pass@1 (62% at the start) nor the probe rises
much; docs/findings.md has the runs.
"""

import dataclasses

from coderl_jax.configs import MODELS_DIR
from coderl_jax.configs.default_cpu import config as base

config = dataclasses.replace(
    base,
    model=str(MODELS_DIR / "coderl-tiny-states"),
    out_dir="runs/states_cpu",
    data=dataclasses.replace(base.data, suite=dataclasses.replace(base.data.suite, probe_programs=300)),
    alignment=dataclasses.replace(base.alignment, max_value_chars=8, max_output_chars=8),
)
