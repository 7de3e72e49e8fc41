"""The train step against an independent NumPy computation of verl's loss, plus its invariances."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coderl_jax.models import ModelConfig, init_params
from coderl_jax.models import transformer
from coderl_jax.parallel.simulated import run_pytest_on_simulated_devices
from coderl_jax.rl import train_step as train_step_module
from coderl_jax.optim import OptimConfig, make_optimizer, param_path
from coderl_jax.rl.train_step import LossConfig, _micro_loss, init_train_state, make_logprob_fn, make_train_step

CFG = ModelConfig(family="qwen2", vocab_size=97, hidden_size=32, intermediate_size=64, num_layers=2,
                  num_heads=4, num_kv_heads=2, head_dim=8, attention_bias=True, tie_word_embeddings=True)


def make_batch(seed=0, b=8, length=12, prompt=5):
    rng = np.random.RandomState(seed)
    tokens = rng.randint(0, CFG.vocab_size, (b, length)).astype(np.int32)
    pads = rng.randint(0, 3, b)  # left padding of the prompt
    resp_len = rng.randint(2, length - prompt + 1, b)
    attn = np.zeros((b, length), bool)
    loss = np.zeros((b, length), bool)
    for i in range(b):
        attn[i, pads[i]:prompt + resp_len[i]] = True
        loss[i, prompt - 1:prompt + resp_len[i] - 1] = True  # positions predicting response tokens
    positions = np.maximum(np.cumsum(attn, 1) - 1, 0).astype(np.int32)
    adv = np.repeat(rng.normal(0, 1, (b, 1)), length, 1).astype(np.float32)
    return dict(tokens=tokens, positions=positions, attn_mask=attn, loss_mask=loss,
                old_logprobs=np.zeros((b, length), np.float32), ref_logprobs=np.zeros((b, length), np.float32),
                advantages=adv)


def full_logprobs(params, batch):
    logits = transformer.forward(params, CFG, batch["tokens"], batch["positions"], mask_bt=batch["attn_mask"]).logits_btv
    logp = jax.nn.log_softmax(np.asarray(logits, np.float64), axis=-1)
    targets = np.concatenate([batch["tokens"][:, 1:], np.zeros_like(batch["tokens"][:, :1])], 1)
    return np.take_along_axis(np.asarray(logp), targets[..., None], -1)[..., 0]


def np_loss(logp, batch, kl_coef):
    m = batch["loss_mask"].astype(np.float64)
    ratio = np.exp(np.clip(logp - batch["old_logprobs"], -20, 20))
    a = batch["advantages"]
    l1, l2 = -a * ratio, -a * np.clip(ratio, 0.8, 1.2)
    c1 = np.maximum(l1, l2)
    per = np.where(a < 0, np.minimum(-a * 3.0, c1), c1)
    d = np.clip(batch["ref_logprobs"] - logp, -20, 20)
    kl = np.clip(np.exp(d) - d - 1, -10, 10)
    return (per * m).sum() / m.sum() + kl_coef * (kl * m).sum() / m.sum()


@pytest.fixture(scope="module")
def setup():
    params = init_params(CFG, 0)
    batch = make_batch()
    logprob_fn = make_logprob_fn(CFG)
    old = np.asarray(logprob_fn(params, batch))
    # old log-probs off the current ones so the ratio is clipped on some tokens
    batch["old_logprobs"] = (old + np.random.RandomState(1).normal(0, 0.3, old.shape)).astype(np.float32)
    batch["ref_logprobs"] = (old + np.random.RandomState(2).normal(0, 0.5, old.shape)).astype(np.float32)
    return params, batch


def test_trainer_logprobs_equal_full_log_softmax(setup):
    params, batch = setup
    ours = np.asarray(make_logprob_fn(CFG, chunk_rows=7)(params, batch))
    ref = full_logprobs(params, batch)
    m = batch["attn_mask"]
    np.testing.assert_allclose(ours[m], ref[m], atol=1e-5)


def test_step_loss_matches_numpy_verl_loss(setup):
    params, batch = setup
    opt = make_optimizer(OptimConfig(learning_rate=1e-3))
    step = make_train_step(CFG, LossConfig(kl_coef=0.05), opt)
    state = init_train_state(jax.tree.map(jnp.copy, params), opt)
    _, metrics = step(state, batch, jax.random.key(0))
    expected = np_loss(full_logprobs(params, batch), batch, 0.05)
    assert float(metrics["loss"]) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert 0.0 < float(metrics["clipfrac"]) < 1.0
    assert float(metrics["skipped"]) == 0.0


@pytest.mark.parametrize("num_micro", [2, 4])
def test_gradient_accumulation_gives_the_same_update(setup, num_micro):
    # plain SGD with lr 1 makes the parameter change equal the gradient (Adam's first step is
    # ~sign(g) and would amplify float summation-order noise in near-zero gradient entries)
    import optax
    params, batch = setup
    opt = optax.sgd(1.0)
    outs = []
    for n in (1, num_micro):
        step = make_train_step(CFG, LossConfig(), opt, num_micro=n)
        state, metrics = step(init_train_state(jax.tree.map(jnp.copy, params), opt), batch, jax.random.key(0))
        outs.append((state.params, float(metrics["loss"]), float(metrics["clipfrac"])))
    assert outs[0][1] == pytest.approx(outs[1][1], rel=1e-5)
    assert outs[0][2] == pytest.approx(outs[1][2], abs=1e-6)
    diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), outs[0][0], outs[1][0]))
    assert max(diffs) < 1e-6
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), outs[0][0], params))
    assert max(moved) > 1e-4  # the update really changed the parameters


def _right_pad(batch, length):
    """The same rows in a longer array: right padding changes no causal log-prob."""
    return {k: np.pad(v, ((0, 0), (0, length - v.shape[1]))) for k, v in batch.items()}


@pytest.mark.parametrize("agg,num_micro", [("token-mean", 1), ("seq-mean-token-mean", 2),
                                           ("seq-mean-token-sum-norm", 1)])
def test_segments_of_different_lengths_equal_one_padded_batch(setup, agg, num_micro):
    # long rows [8, 12] and short rows [4, 7] as two segments of one mini-batch give the same loss,
    # metrics and update as all 12 rows packed to length 12
    import optax
    params, long = setup
    short = make_batch(seed=3, b=4, length=7, prompt=3)
    short["old_logprobs"] = np.random.RandomState(4).normal(-4, 0.3, (4, 7)).astype(np.float32)
    short["ref_logprobs"] = np.random.RandomState(5).normal(-4, 0.5, (4, 7)).astype(np.float32)
    padded = {k: np.concatenate([long[k], _right_pad(short, 12)[k]]) for k in long}
    opt = optax.sgd(1.0)
    loss_cfg = LossConfig(kl_coef=0.05, agg=agg, norm_len=9)
    step = make_train_step(CFG, loss_cfg, opt, num_micro=num_micro)
    outs = [step(init_train_state(jax.tree.map(jnp.copy, params), opt), b, jax.random.key(0))
            for b in (padded, (long, short))]
    (one, m_one), (two, m_two) = outs
    for key in ("loss", "pg_loss", "kl_loss", "clipfrac", "num_tokens", "advantage_mean", "entropy_token_mean"):
        assert float(m_two[key]) == pytest.approx(float(m_one[key]), rel=1e-5, abs=1e-7), key
    diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), one.params, two.params))
    assert max(diffs) < 1e-6
    # and the short rows really count: without them the update differs
    alone, _ = step(init_train_state(jax.tree.map(jnp.copy, params), opt), (long,), jax.random.key(0))
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), alone.params, two.params))
    assert max(moved) > 1e-4


def test_non_finite_loss_skips_the_update(setup):
    params, batch = setup
    bad = dict(batch, advantages=np.full_like(batch["advantages"], np.nan))
    opt = make_optimizer(OptimConfig(learning_rate=1e-2))
    step = make_train_step(CFG, LossConfig(), opt)
    state, metrics = step(init_train_state(jax.tree.map(jnp.copy, params), opt), bad, jax.random.key(0))
    assert float(metrics["skipped"]) == 1.0
    assert int(state.step) == 0
    same = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), state.params, params))
    assert all(same)


def test_updates_raise_likelihood_of_advantaged_sequences(setup):
    params, batch = setup
    batch = dict(batch)
    logprob_fn = make_logprob_fn(CFG)
    batch["old_logprobs"] = np.asarray(logprob_fn(params, batch))
    adv = np.where(np.arange(8)[:, None] < 4, 1.0, -1.0) * np.ones_like(batch["advantages"])
    batch["advantages"] = adv.astype(np.float32)
    opt = make_optimizer(OptimConfig(learning_rate=3e-3))
    step = make_train_step(CFG, LossConfig(kl_coef=0.0), opt)
    state = init_train_state(jax.tree.map(jnp.copy, params), opt)
    for _ in range(5):
        state, _ = step(state, batch, jax.random.key(0))
    new = np.asarray(logprob_fn(state.params, batch))
    m = batch["loss_mask"]
    gain = [(new[i] - batch["old_logprobs"][i])[m[i]].sum() for i in range(8)]
    assert all(g > 0 for g in gain[:4]) and all(g < 0 for g in gain[4:])


def test_schedules():
    from coderl_jax.optim import learning_rate_schedule
    warm = learning_rate_schedule(OptimConfig(learning_rate=1.0, schedule="warmup_constant", warmup_steps=10))
    assert float(warm(0)) == 0.0 and float(warm(5)) == pytest.approx(0.5) and float(warm(50)) == 1.0
    cos = learning_rate_schedule(OptimConfig(learning_rate=1.0, schedule="cosine", warmup_steps=0, total_steps=100))
    assert float(cos(100)) == pytest.approx(0.0, abs=1e-6) and float(cos(50)) == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match="schedule"):
        learning_rate_schedule(OptimConfig(schedule="linear"))


def test_sgd_steps_along_the_clipped_gradient_and_adam_by_its_sign():
    rng = np.random.RandomState(0)
    params = {"w": jnp.asarray(rng.normal(0, 1, (4, 3)), jnp.float32)}
    grads = {"w": jnp.asarray(rng.normal(0, 1, (4, 3)) * np.array([1e-3, 1.0, 10.0]), jnp.float32)}
    g = np.asarray(grads["w"], np.float64)
    clipped = g * min(1.0, 2.0 / np.linalg.norm(g))
    w = np.asarray(params["w"], np.float64)
    sgd = make_optimizer(OptimConfig(name="sgd", learning_rate=0.1, weight_decay=0.01, grad_clip=2.0))
    update, state = sgd.update(grads, sgd.init(params), params)
    np.testing.assert_allclose(update["w"], -0.1 * (clipped + 0.01 * w), rtol=1e-5)
    heavy = make_optimizer(OptimConfig(name="sgd", learning_rate=0.1, weight_decay=0.0, grad_clip=0, momentum=0.9))
    state = heavy.init(params)
    u1, state = heavy.update(grads, state, params)
    u2, state = heavy.update(grads, state, params)
    np.testing.assert_allclose(u2["w"], -0.1 * 1.9 * g, rtol=1e-5)  # velocity g, then 0.9 g + g
    # Adam's first step moves every coordinate by about lr, however small its gradient
    adam = make_optimizer(OptimConfig(learning_rate=0.1, weight_decay=0.0, grad_clip=0))
    u, _ = adam.update(grads, adam.init(params), params)
    np.testing.assert_allclose(np.abs(u["w"]), 0.1, rtol=1e-3)
    with pytest.raises(ValueError, match="optim.name"):
        make_optimizer(OptimConfig(name="lion"))


def test_remat_gives_the_same_gradients(setup):
    params, batch = setup
    grads = []
    for remat in (False, True):
        loss_cfg = LossConfig(kl_coef=0.05, remat=remat)
        fn = jax.jit(jax.grad(lambda p: train_step_module._micro_loss(p, batch, 10.0, CFG, loss_cfg)[0]))
        grads.append(fn(params))
    diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), *grads))
    assert max(diffs) < 1e-7
    assert max(jax.tree.leaves(jax.tree.map(lambda g: float(jnp.max(jnp.abs(g))), grads[0]))) > 1e-4


def test_sharded_step_on_8_simulated_devices():
    rc, out = run_pytest_on_simulated_devices(Path(__file__).parent / "multidevice_train_step.py")
    assert rc == 0, out


def test_frozen_parameters_stay_and_the_rest_trains_as_without_them(setup):
    import optax

    # optim.frozen drops those gradients before clipping and AdamW: the frozen leaves stay bit for
    # bit, and the trained ones get exactly the update of an optimizer over the trained leaves alone
    params, batch = setup
    frozen = ("embed_tokens", "layers.0")
    cfg = OptimConfig(learning_rate=1e-2, grad_clip=1e-3, frozen=frozen)  # a clip that binds
    opt = make_optimizer(cfg)
    step = make_train_step(CFG, LossConfig(), opt)
    state, _ = step(init_train_state(jax.tree.map(jnp.copy, params), opt), batch, jax.random.key(0))
    is_frozen = lambda path: param_path(path).startswith(("embed_tokens", "layers.0."))  # noqa: E731
    moved = jax.tree_util.tree_map_with_path(
        lambda path, a, b: (is_frozen(path), float(jnp.max(jnp.abs(a - b)))), state.params, params)
    pairs = jax.tree.leaves(moved, is_leaf=lambda x: isinstance(x, tuple))
    assert all(d == 0.0 for f, d in pairs if f) and any(f for f, _ in pairs)
    assert all(d > 0.0 for f, d in pairs if not f)
    # the reference: clip + AdamW over the trained leaves' gradients only
    grads = jax.grad(lambda p: _micro_loss(p, jax.device_put(batch), float(batch["loss_mask"].sum()), CFG,
                                           LossConfig())[0])(params)
    grads = jax.tree_util.tree_map_with_path(lambda path, g: jnp.zeros_like(g) if is_frozen(path) else g, grads)
    norm = float(optax.tree.norm(grads))
    scale = min(1.0, 1e-3 / norm)
    # AdamW's first step: lr * g / (|g| + eps) (bias-corrected), plus decoupled weight decay
    want = jax.tree_util.tree_map_with_path(
        lambda path, p, g: p if is_frozen(path) else
        p - 1e-2 * ((g * scale) / (jnp.abs(g * scale) + 1e-8) + cfg.weight_decay * p), params, grads)
    diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), state.params, want))
    assert max(diffs) < 1e-5


def test_frozen_path_that_names_nothing_is_a_clear_error(setup):
    params, _ = setup
    opt = make_optimizer(OptimConfig(frozen=("layers.99",)))
    with pytest.raises(ValueError, match=r"optim.frozen: \['layers.99'\] name no parameter"):
        init_train_state(params, opt)
