import jax
import jax.numpy as jnp
import numpy as np

from coderl_jax.optim import OptimConfig, make_optimizer
from coderl_jax.rl.train_step import init_train_state
from coderl_jax.train.checkpointing import Checkpointer


def test_save_restore_round_trip_keeps_last_k(tmp_path):
    params = {"w": jnp.arange(6.0).reshape(2, 3), "layers": {0: {"b": jnp.ones(3)}}}
    opt = make_optimizer(OptimConfig(learning_rate=0.1))
    state = init_train_state(params, opt)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, opt_state = opt.update(grads, state.opt_state, params)  # non-trivial Adam moments
    ckpt = Checkpointer(tmp_path / "ckpt", keep=2, every=1)
    rng = jax.random.key(7)
    for step in (1, 2, 3):
        ckpt.save(step, params=jax.tree.map(lambda x: x * step, params), opt_state=opt_state, rng=rng,
                  data_state={"next_index": step * 10}, extra={"buffer": [step]})
    ckpt.wait()
    assert ckpt.latest_step() == 3
    assert sorted(int(p.name) for p in (tmp_path / "ckpt").iterdir() if p.name.isdigit()) == [2, 3]
    out = Checkpointer(tmp_path / "ckpt").restore(params_like=params, opt_state_like=opt_state)
    assert out["step"] == 3 and out["data_state"] == {"next_index": 30} and out["extra"] == {"buffer": [3]}
    np.testing.assert_array_equal(out["params"]["w"], np.asarray(params["w"]) * 3)
    for a, b in zip(jax.tree.leaves(out["opt_state"]), jax.tree.leaves(opt_state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jax.tree.structure(out["opt_state"]) == jax.tree.structure(opt_state)
    np.testing.assert_array_equal(jax.random.key_data(out["rng"]), jax.random.key_data(rng))
    ckpt.close()


def test_restore_without_checkpoint_is_a_clear_error(tmp_path):
    import pytest
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Checkpointer(tmp_path / "empty").restore(params_like={}, opt_state_like={})
