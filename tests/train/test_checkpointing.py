import os
import socket
import subprocess
import sys
from pathlib import Path

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


# ------------------------------------------------------------------------------------------------
# a multi-process job: every process must see the checkpoint directory

SHARED_WORKER = """
import sys
from coderl_jax.parallel import init_distributed
init_distributed()
from coderl_jax.train.checkpointing import Checkpointer
Checkpointer(sys.argv[1]).close()
print("shared", flush=True)
"""


def _two_processes(tmp_path, argv_of, *, cwd):
    """Start 2 processes joined by jax.distributed on localhost; argv_of(i) is process i's command."""
    repo = Path(__file__).resolve().parents[2]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for i in range(2):
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
               "CODERL_NUM_PROCESSES": "2", "CODERL_PROCESS_ID": str(i), "CODERL_COMPILE_CACHE": "0",
               "CODERL_DATA_DIR": str(tmp_path / f"tfds{i}"),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH", "")]))}
        env.pop("CODERL_DISTRIBUTED", None)
        procs.append(subprocess.Popen([sys.executable, *argv_of(i)], env=env, cwd=cwd, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=300))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs)]


def test_processes_that_share_the_checkpoint_directory_start(tmp_path):
    """Two processes on one machine, one directory (as NFS): the check passes and leaves nothing."""
    results = _two_processes(tmp_path, lambda i: ["-c", SHARED_WORKER, str(tmp_path / "ckpt")], cwd=tmp_path)
    for code, out, err in results:
        assert code == 0 and out.strip().splitlines()[-1] == "shared", err[-3000:]
    assert not [p for p in (tmp_path / "ckpt").iterdir() if p.name.startswith(".coderl-shared-check-")]


def test_hosts_with_their_own_local_checkpoint_directory_are_refused(tmp_path):
    """`coderl train` on 2 processes whose out_dirs (so <out_dir>/checkpoints) are each their own, as on
    a pod's local disks: both stop at start-up with one line that says why and what to set."""
    def argv(i):
        return ["-m", "coderl_jax.cli", "train", "--config", "tiny_cpu", f"out_dir={tmp_path / f'host{i}'}",
                "progress=false", "eval.every=0"]

    results = _two_processes(tmp_path, argv, cwd=tmp_path)
    for i, (code, out, err) in enumerate(results):
        assert code == 2, err[-3000:]
        line = err.strip().splitlines()[-1]
        assert line.startswith("coderl train: checkpoint_dir is not shared by the job's 2 processes"), err
        assert f"wrote a check file in {tmp_path / 'host0' / 'checkpoints'}" in line
        where = tmp_path / "host1" / "checkpoints"
        assert f"process 1 on {socket.gethostname()} looked in {where}: the file is not there" in line
        assert "checkpoint_dir=gs://BUCKET/runs/NAME/checkpoints" in line and "NFS" in line
    assert not (tmp_path / "host1" / "checkpoints").exists()  # nothing was written on the other host
