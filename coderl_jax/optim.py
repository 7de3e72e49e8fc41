"""Optimizers and learning-rate schedules for both trainers (`coderl train` and `coderl sft`).

`OptimConfig` names the optimizer (AdamW as torch's AdamW in verl, or SGD), its schedule, gradient
clipping and the parameters left frozen; `make_optimizer` turns it into one optax transformation.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import optax


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    name: str = "adamw"  # adamw | sgd
    learning_rate: float = 1e-6
    schedule: str = "constant"  # constant | warmup_constant | cosine
    warmup_steps: int = 0
    total_steps: int = 1000  # for cosine
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of learning_rate
    weight_decay: float = 0.01
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    grad_clip: float = 1.0  # global norm; 0 disables
    momentum: float = 0.0  # sgd only (heavy ball); 0 = plain gradient steps
    # parameter paths left untouched ("embed_tokens", "layers.0", "layers.0.self_attn.q_proj", ...):
    # their gradients are dropped before clipping and the optimizer (the logged grad_norm still counts them)
    frozen: tuple[str, ...] = ()



def learning_rate_schedule(cfg: OptimConfig) -> optax.Schedule:
    if cfg.schedule == "constant":
        return optax.constant_schedule(cfg.learning_rate)
    if cfg.schedule == "warmup_constant":
        return optax.join_schedules(
            [optax.linear_schedule(0.0, cfg.learning_rate, max(cfg.warmup_steps, 1)),
             optax.constant_schedule(cfg.learning_rate)], [cfg.warmup_steps])
    if cfg.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, cfg.learning_rate, max(cfg.warmup_steps, 1), max(cfg.total_steps, cfg.warmup_steps + 1),
            end_value=cfg.learning_rate * cfg.min_lr_ratio)
    raise ValueError(f"optim.schedule={cfg.schedule!r}: expected constant, warmup_constant or cosine")


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW (decoupled weight decay, as torch's AdamW in verl) or SGD
    (decoupled weight decay, optional momentum).

    Adam normalises every coordinate by its own gradient scale, so its first steps move each
    parameter by about +-lr whatever its gradient: a policy gradient that only a few tokens carry
    is nearly low-rank, and its sign is a low-rank matrix of large norm. SGD steps along the
    gradient itself, in proportion to it (docs/training.md, "Optimizers")."""
    schedule = learning_rate_schedule(cfg)
    if cfg.name == "adamw":
        opt = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
    elif cfg.name == "sgd":
        opt = optax.chain(optax.add_decayed_weights(cfg.weight_decay) if cfg.weight_decay else optax.identity(),
                          optax.sgd(schedule, momentum=cfg.momentum or None))
    else:
        raise ValueError(f"optim.name={cfg.name!r}: expected adamw or sgd")
    if cfg.grad_clip and cfg.grad_clip > 0:
        opt = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt)
    if cfg.frozen:
        return optax.multi_transform({"trained": opt, "frozen": optax.set_to_zero()},
                                     functools.partial(_frozen_labels, frozen=tuple(cfg.frozen)))
    return opt


def param_path(path) -> str:
    """A parameter's dotted path in the params dict: "layers.0.self_attn.q_proj"."""
    return ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _frozen_labels(params, frozen: tuple[str, ...]):
    """"frozen" or "trained" per leaf; a prefix in optim.frozen that names no parameter is an error."""
    used = set()

    def label(path, _):
        name = param_path(path)
        hits = [f for f in frozen if name == f or name.startswith(f + ".")]
        used.update(hits)
        return "frozen" if hits else "trained"

    labels = jax.tree_util.tree_map_with_path(label, params)
    unknown = [f for f in frozen if f not in used]
    if unknown:
        raise ValueError(f"optim.frozen: {unknown} name no parameter (paths look like 'embed_tokens', "
                         "'layers.0', 'layers.3.mlp.down_proj', 'norm')")
    return labels
