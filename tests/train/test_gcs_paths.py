"""Where checkpoints and outputs may live: the checkpoint directory a config resolves to, a clear
error for gs:// without the `gcs` extra, and the directories that must stay local."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from coderl_jax.errors import UserError
from coderl_jax.train.storage import StorageError, checkpoint_path, resolve_checkpoint_dir, write_text


def test_checkpoint_dir_resolution():
    assert resolve_checkpoint_dir("", bucket="", out_dir="runs/x") == str(Path("runs/x/checkpoints"))
    assert resolve_checkpoint_dir("gs://b/run", bucket="", out_dir="runs/x") == "gs://b/run"
    template = "gs://{bucket}/runs/qwen/checkpoints"  # the pod presets'
    assert resolve_checkpoint_dir(template, bucket="my-b", out_dir="runs/x") == "gs://my-b/runs/qwen/checkpoints"
    assert resolve_checkpoint_dir(template, bucket="gs://my-b/", out_dir="runs/x") == "gs://my-b/runs/qwen/checkpoints"
    with pytest.raises(StorageError, match=r"set bucket=NAME"):
        resolve_checkpoint_dir(template, bucket="", out_dir="runs/x")
    with pytest.raises(StorageError, match=r"out_dir=gs://b/x: must be a local directory"):
        resolve_checkpoint_dir("", bucket="", out_dir="gs://b/x")
    assert issubclass(StorageError, UserError)  # the CLI prints one line


def test_pod_presets_checkpoint_to_the_bucket():
    from coderl_jax.configs.pods import PODS, pod_config

    for name in PODS:
        cfg = pod_config(name)
        assert cfg.checkpoint_dir == f"gs://{{bucket}}/runs/{name}/checkpoints" and cfg.bucket == ""
        assert resolve_checkpoint_dir(cfg.checkpoint_dir, bucket="b", out_dir=cfg.out_dir) == \
            f"gs://b/runs/{name}/checkpoints"


def test_gs_without_the_gcs_extra_names_it(monkeypatch):
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "gcsfs", None)  # import gcsfs -> ImportError
        with pytest.raises(StorageError, match=r"pip install 'coderl-jax\[gcs\]'"):
            checkpoint_path("gs://bucket/run")
    pytest.importorskip("gcsfs")
    with pytest.raises(StorageError, match="name a bucket"):
        checkpoint_path("gs://")


def test_local_checkpoint_path_is_absolute_and_written_whole(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = checkpoint_path("ckpt")
    assert str(path) == str(tmp_path / "ckpt")
    path.mkdir()
    write_text(path / "model_config.json", "{}\n")
    assert (tmp_path / "ckpt" / "model_config.json").read_text() == "{}\n"
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["model_config.json"]  # no temporary left


def test_evaluation_output_in_a_bucket_is_refused_with_the_way_round():
    from coderl_jax.eval.runner import OutputError, check_local_output

    for out in ("gs://b/eval", Path("gs://b/eval")):  # `coderl eval --out` is a Path: gs:/b/eval
        with pytest.raises(OutputError, match="copy it to a bucket afterwards"):
            check_local_output(out)
    check_local_output("runs/x/eval")
    check_local_output("/tmp/a:/b")
