"""Evaluation: benchmarks from local files, pass@k, sandboxed scoring, resumable runs.

    from coderl_jax.eval import SamplerGenerator, load_benchmark, evaluate, settings_for

`settings_for(name, "paper")` gives a benchmark's setting in a named preset (presets.py).

`coderl eval` (coderl_jax/eval/cli.py) drives it from the command line; the training loop calls
`evaluate` / `run` with its own sampler and tracer pool. docs/eval.md has the details.
"""

from coderl_jax.eval.benchmarks import BENCHMARKS, EvalItem, get_benchmark, load_benchmark, register_benchmark
from coderl_jax.eval.generators import OracleGenerator, Sample, SamplerGenerator, load_model
from coderl_jax.eval.passk import mean_pass_at_k, pass_at_k
from coderl_jax.eval.presets import PRESETS, EvalPreset, get_preset
from coderl_jax.eval.runner import EvalSettings, ResumeError, evaluate, metrics, run, settings_for
from coderl_jax.eval.scoring import score_responses

__all__ = ["BENCHMARKS", "EvalItem", "get_benchmark", "load_benchmark", "register_benchmark", "OracleGenerator",
           "Sample", "SamplerGenerator", "load_model", "mean_pass_at_k", "pass_at_k", "PRESETS", "EvalPreset",
           "get_preset", "EvalSettings", "ResumeError",
           "evaluate", "metrics", "run", "settings_for", "score_responses"]
