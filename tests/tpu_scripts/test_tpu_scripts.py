"""tpu_scripts/: each script's --dry-run, and real runs against a fake `gcloud` on PATH that records
the commands it receives (and answers `describe` / the trainer-status ssh from environment values)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "tpu_scripts"
NAMES = ("create.sh", "setup.sh", "launch.sh", "watch.sh", "delete.sh")

FAKE_GCLOUD = r"""#!/usr/bin/env bash
# records one line per call: the arguments joined by US (0x1f)
(IFS=$'\x1f'; echo "$*") >> "$FAKE_GCLOUD_LOG"
case "$*" in
  *" describe "*) echo "${FAKE_TPU_STATE:-READY}" ;;
  *"--worker=0"*exit_code*) echo "${FAKE_EXIT_CODE:-running}" ;;
esac
exit 0
"""


@pytest.fixture
def fake(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    gcloud = bindir / "gcloud"
    gcloud.write_text(FAKE_GCLOUD)
    gcloud.chmod(gcloud.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "gcloud.log"
    log.touch()
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "FAKE_GCLOUD_LOG": str(log),
           "TMPDIR": str(tmp_path), "CODERL_POLL_S": "0"}
    env.pop("CODERL_TPU_NAME", None)

    def run(script, *args, **extra_env):
        proc = subprocess.run(["bash", str(SCRIPTS / script), *args], capture_output=True, text=True,
                              env={**env, **extra_env}, timeout=60, cwd=REPO)
        calls = [line.split("\x1f") for line in log.read_text().splitlines()]
        log.write_text("")
        return proc, calls

    return run


TARGET = ("--name", "coderl-7b", "--zone", "us-east5-a", "--project", "my-proj")


def test_scripts_exist_and_are_executable():
    for name in NAMES:
        path = SCRIPTS / name
        assert path.exists(), name
        assert os.access(path, os.X_OK), f"{name} is not executable"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)")
def test_shellcheck_clean():
    proc = subprocess.run(["shellcheck", "-x", *[str(SCRIPTS / n) for n in NAMES + ("common.sh",)]],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_create_direct(fake):
    proc, calls = fake("create.sh", *TARGET, "--accelerator-type", "v5p-64", "--spot")
    assert proc.returncode == 0, proc.stderr
    assert calls == [["compute", "tpus", "tpu-vm", "create", "coderl-7b", "--zone=us-east5-a", "--project=my-proj",
                      "--accelerator-type=v5p-64", "--version=v2-alpha-tpuv5", "--spot"]]


def test_create_queued_waits_until_active(fake):
    proc, calls = fake("create.sh", *TARGET, "--accelerator-type", "v6e-64", "--queued", FAKE_TPU_STATE="ACTIVE")
    assert proc.returncode == 0, proc.stderr
    assert calls[0] == ["compute", "tpus", "queued-resources", "create", "coderl-7b", "--node-id=coderl-7b",
                        "--zone=us-east5-a", "--project=my-proj", "--accelerator-type=v6e-64",
                        "--runtime-version=v2-alpha-tpuv6e"]
    assert calls[1][:4] == ["compute", "tpus", "queued-resources", "describe"]
    proc, calls = fake("create.sh", *TARGET, "--accelerator-type", "v6e-64", "--queued", FAKE_TPU_STATE="FAILED")
    assert proc.returncode != 0 and "FAILED" in proc.stderr


def test_dry_run_prints_and_calls_nothing(fake):
    proc, calls = fake("create.sh", *TARGET, "--accelerator-type", "v5p-8", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert calls == []
    assert proc.stdout.strip() == ("gcloud compute tpus tpu-vm create coderl-7b --zone=us-east5-a --project=my-proj "
                                   "--accelerator-type=v5p-8 --version=v2-alpha-tpuv5")
    for script, extra in [("setup.sh", ()), ("launch.sh", ("--config", "configs/tiny_cpu.py")), ("delete.sh", ()),
                          ("watch.sh", ("--config", "configs/tiny_cpu.py", "--accelerator-type", "v5p-8"))]:
        proc, calls = fake(script, *TARGET, *extra, "--dry-run")
        assert proc.returncode == 0, (script, proc.stderr)
        assert calls == [], script
        assert "gcloud compute tpus" in proc.stdout, script


def test_missing_required_options(fake):
    proc, _ = fake("create.sh", "--zone", "z", "--accelerator-type", "v5p-8")
    assert proc.returncode == 2 and "--name" in proc.stderr
    proc, _ = fake("launch.sh", *TARGET)
    assert proc.returncode == 2 and "--config" in proc.stderr
    proc, _ = fake("create.sh", *TARGET, "--bogus")
    assert proc.returncode == 2 and "unknown option --bogus" in proc.stderr


def test_setup_copies_installs_and_downloads(fake, tmp_path):
    proc, calls = fake("setup.sh", *TARGET, "--model", "Qwen/Qwen2.5-Coder-7B-Instruct")
    assert proc.returncode == 0, proc.stderr
    scp, install, model = calls
    assert scp[:4] == ["compute", "tpus", "tpu-vm", "scp"] and "--worker=all" in scp
    assert scp[5] == "coderl-7b:coderl_jax_src.tar.gz"
    assert (tmp_path / "coderl_jax_src.tar.gz").stat().st_size > 1000  # the checkout, copied to every worker
    assert install[:5] == ["compute", "tpus", "tpu-vm", "ssh", "coderl-7b"] and "--worker=all" in install
    assert "pip install -q -e '.[tpu]'" in install[-1]
    assert "hf download Qwen/Qwen2.5-Coder-7B-Instruct --local-dir models/Qwen2.5-Coder-7B-Instruct" in model[-1]


def test_launch_one_process_per_host_with_its_own_log(fake):
    proc, calls = fake("launch.sh", *TARGET, "--config", "configs/qwen25_coder_7b_v5p64.py", "--", "steps=3")
    assert proc.returncode == 0, proc.stderr
    (ssh,) = calls
    assert ssh[:5] == ["compute", "tpus", "tpu-vm", "ssh", "coderl-7b"]
    assert "--worker=all" in ssh
    cmd = ssh[-1]
    assert cmd.startswith("--command=")
    assert "CODERL_DISTRIBUTED=1" in cmd  # each host joins with jax.distributed.initialize
    assert "python3 -m coderl_jax.cli train --config configs/qwen25_coder_7b_v5p64.py steps=3" in cmd
    assert "logs/qwen25_coder_7b_v5p64/worker-$(hostname).log" in cmd
    assert "train.pid" in cmd and "exit_code" in cmd


def test_delete(fake):
    _, calls = fake("delete.sh", *TARGET)
    assert calls == [["compute", "tpus", "tpu-vm", "delete", "coderl-7b", "--zone=us-east5-a", "--project=my-proj",
                      "--quiet"]]
    _, calls = fake("delete.sh", *TARGET, "--queued")
    assert calls[0][:5] == ["compute", "tpus", "queued-resources", "delete", "coderl-7b"] and "--force" in calls[0]


WATCH = (*TARGET, "--accelerator-type", "v5p-64", "--config", "configs/qwen25_coder_7b_v5p64.py", "--once",
         "--sync", "gs://bucket/run")


def verbs(calls):
    return [" ".join(c[2:4]) for c in calls]


def test_watch_healthy_run_only_polls_and_syncs(fake):
    proc, calls = fake("watch.sh", *WATCH, FAKE_TPU_STATE="READY", FAKE_EXIT_CODE="running")
    assert proc.returncode == 0, proc.stderr
    assert verbs(calls) == ["tpu-vm describe", "tpu-vm ssh", "tpu-vm ssh"]  # state, trainer status, sync up
    assert "gcloud storage rsync -r $out gs://bucket/run" in calls[2][-1]


def test_watch_restarts_after_preemption_and_resumes(fake):
    proc, calls = fake("watch.sh", *WATCH, FAKE_TPU_STATE="PREEMPTED")
    assert proc.returncode == 0, proc.stderr
    assert verbs(calls) == ["tpu-vm describe", "tpu-vm delete", "tpu-vm create", "tpu-vm scp", "tpu-vm ssh",
                            "tpu-vm ssh", "tpu-vm ssh"]  # ..., install, checkpoints back, launch
    assert "gcloud storage rsync -r gs://bucket/run $out" in calls[5][-1]
    assert "coderl_jax.cli train --config configs/qwen25_coder_7b_v5p64.py" in calls[6][-1]
    assert "restarting coderl-7b (PREEMPTED)" in proc.stderr


def test_watch_relaunches_a_crashed_trainer_and_stops_when_done(fake):
    proc, calls = fake("watch.sh", *WATCH, FAKE_TPU_STATE="READY", FAKE_EXIT_CODE="1")
    assert proc.returncode == 0, proc.stderr
    assert verbs(calls)[-1] == "tpu-vm ssh" and "coderl_jax.cli train" in calls[-1][-1]
    assert "tpu-vm create" not in verbs(calls)
    proc, calls = fake("watch.sh", *WATCH, FAKE_TPU_STATE="READY", FAKE_EXIT_CODE="0")
    assert proc.returncode == 0 and "finished" in proc.stderr
    assert not any("coderl_jax.cli train --config" in c[-1] and "nohup" in c[-1] for c in calls)
