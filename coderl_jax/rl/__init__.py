"""The RL core: advantage estimators, KL estimators, the clipped policy loss, chunked log-probs.

Public names that research forks import: `compute_advantages`, `kl_penalty`, `policy_loss`.
"""

from coderl_jax.rl.advantages import (
    advantage_estimators,
    compute_advantages,
    register_advantage,
    zero_variance_fraction,
)
from coderl_jax.rl.kl import kl_penalty
from coderl_jax.rl.logprobs import token_logprobs
from coderl_jax.rl.policy_loss import (
    AGG_MODES,
    loss_denominator,
    loss_numerator,
    masked_mean,
    policy_loss,
)

__all__ = [
    "AGG_MODES", "advantage_estimators", "compute_advantages", "kl_penalty",
    "loss_denominator", "loss_numerator", "masked_mean", "policy_loss", "register_advantage",
    "token_logprobs", "zero_variance_fraction",
]
