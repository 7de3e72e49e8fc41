"""tpu_scripts/: each script's --dry-run, and real runs against a fake `gcloud` on PATH that records
the commands it receives and answers `describe`, `create` and the trainer-status ssh from
environment values (comma-separated lists: the k-th call gets the k-th item, the last one repeats,
so a slice can be PREEMPTED and then READY). With FAKE_WORKER_HOME set, the fake runs every ssh
command itself, with that HOME: one local "worker", so the remote shell code really runs."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "tpu_scripts"
NAMES = ("create.sh", "setup.sh", "launch.sh", "watch.sh", "delete.sh")

FAKE_GCLOUD = r"""#!/usr/bin/env bash
# records one line per call: the arguments joined by US (0x1f)
(IFS=$'\x1f'; echo "$*") >> "$FAKE_GCLOUD_LOG"
: "${FAKE_TPU_STATE:=READY}" "${FAKE_EXIT_CODE:=running}" "${FAKE_CREATE_RC:=0}"
next() {  # item k of the list in variable $1 on its k-th use; the last item repeats
  local count="$FAKE_GCLOUD_LOG.$1.n" n=0 items
  if [[ -f "$count" ]]; then n=$(<"$count"); fi
  echo $((n + 1)) > "$count"
  IFS=, read -ra items <<< "${!1}"
  if (( n >= ${#items[@]} )); then n=$((${#items[@]} - 1)); fi
  echo "${items[$n]}"
}
if [[ -n "${FAKE_WORKER_HOME:-}" && "$*" == *" ssh "* ]]; then
  for a in "$@"; do [[ "$a" == --command=* ]] && cmd="${a#--command=}"; done
  cd "$FAKE_WORKER_HOME" && HOME="$FAKE_WORKER_HOME" exec bash -c "$cmd"
fi
case "$*" in
  *" describe "*) next FAKE_TPU_STATE ;;
  *"tpu-vm create "*|*"queued-resources create "*) exit "$(next FAKE_CREATE_RC)" ;;
  *"--worker=0"*exit_code*) next FAKE_EXIT_CODE ;;
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
    for key in ("CODERL_TPU_NAME", "CODERL_BUCKET", "CODERL_PYTHON"):
        env.pop(key, None)

    def run(script, *args, **extra_env):
        proc = subprocess.run(["bash", str(SCRIPTS / script), *args], capture_output=True, text=True,
                              env={**env, **extra_env}, timeout=120, cwd=REPO)
        calls = [line.split("\x1f") for line in log.read_text().splitlines()]
        log.write_text("")
        for counter in tmp_path.glob("gcloud.log.*.n"):
            counter.unlink()
        return proc, calls

    run.bindir = bindir
    return run


TARGET = ("--name", "coderl-7b", "--zone", "us-east5-a", "--project", "my-proj")
MODEL_GS = "gs://my-bucket/models/Qwen2.5-Coder-7B-Instruct"
DATA_GS = "gs://my-bucket/data/prime_code"
RUN_URL = "gs://my-bucket/runs/qwen25_coder_7b_v5p64"


def verbs(calls):
    return [" ".join(c[2:4]) for c in calls]


def command(call) -> str:
    assert call[-1].startswith("--command="), call
    return call[-1][len("--command="):]


def worker(call) -> str:
    return next(a for a in call if a.startswith("--worker="))


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
    proc, calls = fake("create.sh", *TARGET, "--accelerator-type", "v6e-64", "--queued",
                       FAKE_TPU_STATE="WAITING_FOR_RESOURCES,ACTIVE")
    assert proc.returncode == 0, proc.stderr
    assert calls[0] == ["compute", "tpus", "queued-resources", "create", "coderl-7b", "--node-id=coderl-7b",
                        "--zone=us-east5-a", "--project=my-proj", "--accelerator-type=v6e-64",
                        "--runtime-version=v2-alpha-tpuv6e"]
    assert verbs(calls[1:]) == ["queued-resources describe"] * 2  # polled until ACTIVE
    proc, calls = fake("create.sh", *TARGET, "--accelerator-type", "v6e-64", "--queued", FAKE_TPU_STATE="FAILED")
    assert proc.returncode != 0 and "FAILED" in proc.stderr


def test_dry_run_prints_and_calls_nothing(fake):
    proc, calls = fake("create.sh", *TARGET, "--accelerator-type", "v5p-8", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert calls == []
    assert proc.stdout.strip() == ("gcloud compute tpus tpu-vm create coderl-7b --zone=us-east5-a --project=my-proj "
                                   "--accelerator-type=v5p-8 --version=v2-alpha-tpuv5")
    for script, extra in [("setup.sh", ("--bucket", "my-bucket", "--model", "Qwen/Qwen2.5-Coder-7B-Instruct")),
                          ("launch.sh", ("--config", "configs/tiny_cpu.py")), ("delete.sh", ()),
                          ("watch.sh", ("--config", "configs/tiny_cpu.py", "--accelerator-type", "v5p-8",
                                        "--bucket", "my-bucket"))]:
        proc, calls = fake(script, *TARGET, *extra, "--dry-run")
        assert proc.returncode == 0, (script, proc.stderr)
        assert calls == [], script
        assert "gcloud compute tpus" in proc.stdout, script


def test_missing_or_bad_options(fake, tmp_path):
    proc, _ = fake("create.sh", "--zone", "z", "--accelerator-type", "v5p-8")
    assert proc.returncode == 2 and "--name" in proc.stderr
    proc, _ = fake("launch.sh", *TARGET)
    assert proc.returncode == 2 and "--config" in proc.stderr
    proc, _ = fake("create.sh", *TARGET, "--bogus")
    assert proc.returncode == 2 and "unknown option --bogus" in proc.stderr
    # a hub model or a local directory goes through a bucket: nothing runs without one
    for bad, why in [(("--model", "Qwen/Qwen2.5-Coder-7B-Instruct"), "needs --bucket"),
                     (("--model", str(tmp_path)), "needs --bucket"), (("--data", str(tmp_path)), "needs --bucket"),
                     (("--model", "not a model"), "neither"), (("--data", "prime_code"), "neither"),
                     (("--bucket", "gs://b/sub", "--model", "Qwen/X"), "takes a bucket name")]:
        proc, calls = fake("setup.sh", *TARGET, *bad)
        assert proc.returncode == 2 and why in proc.stderr, (bad, proc.stderr)
        assert calls == [], bad


def test_setup_installs_a_venv_bubblewrap_and_checks_the_sandbox(fake, tmp_path):
    proc, calls = fake("setup.sh", *TARGET, "--python", "3.12")
    assert proc.returncode == 0, proc.stderr
    scp, install = calls
    assert scp[:4] == ["compute", "tpus", "tpu-vm", "scp"] and worker(scp) == "--worker=all"
    assert scp[5] == "coderl-7b:coderl_jax_src.tar.gz"
    assert (tmp_path / "coderl_jax_src.tar.gz").stat().st_size > 1000  # the checkout, copied to every worker
    assert install[:5] == ["compute", "tpus", "tpu-vm", "ssh", "coderl-7b"] and worker(install) == "--worker=all"
    cmd = command(install)
    assert cmd.startswith("set -eo pipefail;")  # any failing step (the self-test included) fails setup
    steps = ["apt-get -o DPkg::Lock::Timeout=600 -qq install -y bubblewrap",
             "curl -LsSf https://astral.sh/uv/install.sh",
             "uv venv --python 3.12 .venv",
             "uv pip install --python .venv/bin/python -q -e '.[tpu]'",
             ".venv/bin/python -m tracer selftest",
             ".venv/bin/python -c 'import jax;"]
    at = [cmd.find(s) for s in steps]
    assert all(i >= 0 for i in at) and at == sorted(at), list(zip(steps, at))
    assert "python3 -m pip install -q -e" not in cmd  # never into the image's own python
    assert "ready" in proc.stderr
    _, calls = fake("setup.sh", *TARGET)
    assert "uv venv --python 3.11 .venv" in command(calls[1])


def test_setup_stages_model_and_data_from_the_bucket_on_every_worker(fake):
    proc, calls = fake("setup.sh", *TARGET, "--model", MODEL_GS + "/", "--data", DATA_GS)
    assert proc.returncode == 0, proc.stderr
    assert verbs(calls) == ["tpu-vm scp", "tpu-vm ssh", "tpu-vm ssh", "tpu-vm ssh"]
    _, _, model, data = calls
    assert worker(model) == worker(data) == "--worker=all"  # one copy per worker, from GCS
    assert command(model).endswith(f"mkdir -p models/Qwen2.5-Coder-7B-Instruct; gcloud storage rsync -r {MODEL_GS} "
                                   "models/Qwen2.5-Coder-7B-Instruct")
    assert command(data).endswith(f"gcloud storage rsync -r {DATA_GS} data/prime_code")
    assert not any("snapshot_download" in c[-1] or "hf download" in c[-1] for c in calls)  # no hub


def test_setup_downloads_a_hub_model_once_through_the_bucket(fake):
    proc, calls = fake("setup.sh", *TARGET, "--bucket", "gs://my-bucket/", "--model", "Qwen/Qwen2.5-Coder-7B-Instruct")
    assert proc.returncode == 0, proc.stderr
    assert verbs(calls) == ["tpu-vm scp", "tpu-vm ssh", "tpu-vm ssh", "tpu-vm ssh"]
    _, _, once, stage = calls
    hub = [c for c in calls if "snapshot_download" in c[-1]]
    assert hub == [once] and worker(once) == "--worker=0"  # downloaded by one worker only
    cmd = command(once)
    check, download, upload, mark = (cmd.find(s) for s in (
        f"gcloud storage ls {MODEL_GS}.staged",  # a complete copy in the bucket: no download
        "snapshot_download('Qwen/Qwen2.5-Coder-7B-Instruct', local_dir='models/Qwen2.5-Coder-7B-Instruct')",
        f"gcloud storage rsync -r models/Qwen2.5-Coder-7B-Instruct {MODEL_GS}",
        f"gcloud storage cp - {MODEL_GS}.staged"))
    assert 0 <= check < download < upload < mark, cmd
    assert worker(stage) == "--worker=all" and command(stage).endswith(
        f"gcloud storage rsync -r {MODEL_GS} models/Qwen2.5-Coder-7B-Instruct")


def test_setup_uploads_a_local_directory_once(fake, tmp_path):
    data = tmp_path / "prime_code"
    data.mkdir()
    proc, calls = fake("setup.sh", *TARGET, "--bucket", "my-bucket", "--data", str(data))
    assert proc.returncode == 0, proc.stderr
    assert calls[2] == ["storage", "rsync", "-r", str(data), DATA_GS]  # from this machine, once
    assert worker(calls[3]) == "--worker=all" and command(calls[3]).endswith(
        f"gcloud storage rsync -r {DATA_GS} data/prime_code")


def test_launch_one_process_per_host_with_its_own_log(fake):
    proc, calls = fake("launch.sh", *TARGET, "--config", "configs/qwen25_coder_7b_v5p64.py", "--bucket", "my-bucket",
                       "--", "steps=3", "checkpoint_every=5")
    assert proc.returncode == 0, proc.stderr
    (ssh,) = calls
    assert ssh[:5] == ["compute", "tpus", "tpu-vm", "ssh", "coderl-7b"] and worker(ssh) == "--worker=all"
    cmd = command(ssh)
    assert "CODERL_DISTRIBUTED=1" in cmd  # each host joins with jax.distributed.initialize
    assert "setsid" in cmd  # its own process group, so a relaunch stops the trainer, not just its shell
    # the venv's python; the bucket's checkpoint directory before the user's overrides (which win)
    assert (".venv/bin/python -m coderl_jax.cli train --config configs/qwen25_coder_7b_v5p64.py "
            f"checkpoint_dir={RUN_URL}/checkpoints steps=3 checkpoint_every=5 progress=false") in cmd
    assert ">> logs/qwen25_coder_7b_v5p64/worker-$w.log" in cmd and "agent-worker-number" in cmd
    assert "train.pid" in cmd and "exit_code" in cmd
    _, calls = fake("launch.sh", *TARGET, "--config", "configs/qwen25_coder_7b_v5p64.py", "--run", "smoke")
    cmd = command(calls[0])
    assert "checkpoint_dir" not in cmd and "logs/smoke/worker-$w.log" in cmd


# ------------------------------------------------------------------------------------------------
# the remote shell code, run on one local "worker"

FAKE_TRAINER = """#!/usr/bin/env bash
echo "trainer args: $*"
trap 'echo "trainer: SIGTERM"; exit 75' TERM
sleep "${FAKE_TRAIN_S:-0}" & wait
exit "${FAKE_TRAIN_RC:-0}"
"""


@pytest.fixture
def worker_home(tmp_path, fake):
    home = tmp_path / "home"
    venv = home / "coderl_jax" / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_text(FAKE_TRAINER)
    (venv / "python").chmod(0o755)
    curl = fake.bindir / "curl"  # the TPU metadata server: this is worker 0
    curl.write_text("#!/bin/sh\necho 0\n")
    curl.chmod(0o755)
    pids = []
    yield home, pids
    for pid_file in (home / "coderl_jax" / "logs").glob("*/train.pid"):
        try:
            os.killpg(int(pid_file.read_text()), 9)
        except (ProcessLookupError, ValueError):
            pass


def _wait_for(path: Path, timeout=20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear")


def test_launch_and_watch_run_on_a_worker(fake, worker_home):
    home, _ = worker_home
    logs = home / "coderl_jax" / "logs" / "r"
    launch = ("launch.sh", *TARGET, "--config", "c.py", "--run", "r", "--bucket", "b")
    proc, _ = fake(*launch, "--", "steps=3", FAKE_WORKER_HOME=str(home), FAKE_TRAIN_S="60")
    assert proc.returncode == 0, proc.stderr
    first = int(_wait_for(logs / "train.pid"))
    os.killpg(first, 0)  # the trainer runs, in a process group of its own
    watch = ("watch.sh", *TARGET, "--accelerator-type", "v5p-8", "--config", "c.py", "--run", "r", "--once")
    proc, calls = fake(*watch, FAKE_WORKER_HOME=str(home))
    assert proc.returncode == 0 and "restarting" not in proc.stderr, proc.stderr  # status: running
    # a second launch stops the first (SIGTERM to the group: the trainer can checkpoint) and appends
    proc, _ = fake(*launch, FAKE_WORKER_HOME=str(home), FAKE_TRAIN_RC="3")
    assert proc.returncode == 0, proc.stderr
    assert _wait_for(logs / "exit_code") == "3"
    with pytest.raises(ProcessLookupError):
        os.killpg(first, 0)
    log = (logs / "worker-0.log").read_text()
    assert log.count("=== launch") == 2 and "trainer: SIGTERM" in log
    assert "trainer args: -m coderl_jax.cli train --config c.py checkpoint_dir=gs://b/runs/r/checkpoints steps=3" in log
    # exit status 3: watch relaunches on the same slice; status 0: watch stops
    proc, calls = fake(*watch, FAKE_WORKER_HOME=str(home))
    assert "trainer exited with status 3" in proc.stderr and "tpu-vm create" not in verbs(calls)
    assert _wait_for(logs / "exit_code") == "0"
    proc, _ = fake(*watch, FAKE_WORKER_HOME=str(home))
    assert proc.returncode == 0 and "r finished" in proc.stderr, proc.stderr


def test_delete(fake):
    _, calls = fake("delete.sh", *TARGET)
    assert calls == [["compute", "tpus", "tpu-vm", "delete", "coderl-7b", "--zone=us-east5-a", "--project=my-proj",
                      "--quiet"]]
    _, calls = fake("delete.sh", *TARGET, "--queued")
    assert calls[0][:5] == ["compute", "tpus", "queued-resources", "delete", "coderl-7b"] and "--force" in calls[0]


# ------------------------------------------------------------------------------------------------
# watch.sh

WATCH = (*TARGET, "--accelerator-type", "v5p-64", "--config", "configs/qwen25_coder_7b_v5p64.py",
         "--bucket", "my-bucket", "--model", MODEL_GS, "--data", DATA_GS, "--interval", "0")
POLL = ["tpu-vm describe", "tpu-vm ssh", "tpu-vm ssh", "tpu-vm ssh"]  # state, trainer status, out_dir up, logs up
RESTART = ["tpu-vm delete", "tpu-vm create", "tpu-vm scp", "tpu-vm ssh", "tpu-vm ssh", "tpu-vm ssh", "tpu-vm ssh",
           "tpu-vm ssh", "tpu-vm ssh"]  # ..., install, model, data, out_dir down, logs down, launch


def test_watch_healthy_run_polls_and_copies_out_dir_and_logs(fake):
    proc, calls = fake("watch.sh", *WATCH, "--once", FAKE_TPU_STATE="READY", FAKE_EXIT_CODE="running")
    assert proc.returncode == 0, proc.stderr
    assert verbs(calls) == POLL
    status, up, logs = calls[1:]
    assert worker(status) == "--worker=0" and "exit_code" in command(status) and "train.pid" in command(status)
    assert worker(up) == "--worker=0" and f"gcloud storage rsync -r $out {RUN_URL}/out" in command(up)
    assert worker(logs) == "--worker=all"
    assert f"gcloud storage cp worker-$w.log {RUN_URL}/logs/worker-$w.log" in command(logs)


def test_watch_recreates_a_preempted_slice_restages_and_resumes(fake):
    proc, calls = fake("watch.sh", *WATCH, FAKE_TPU_STATE="PREEMPTED,READY", FAKE_EXIT_CODE="running,0")
    assert proc.returncode == 0, proc.stderr
    assert verbs(calls) == ["tpu-vm describe", *RESTART, *POLL, *POLL], verbs(calls)
    assert "restarting coderl-7b (PREEMPTED)" in proc.stderr and "qwen25_coder_7b_v5p64 finished" in proc.stderr
    delete, create, scp, install, model, data, down, logs_down, launch = calls[1:10]
    assert "--accelerator-type=v5p-64" in create
    assert "bubblewrap" in command(install) and ".venv/bin/python -m tracer selftest" in command(install)
    assert command(model).endswith(f"gcloud storage rsync -r {MODEL_GS} models/Qwen2.5-Coder-7B-Instruct")
    assert command(data).endswith(f"gcloud storage rsync -r {DATA_GS} data/prime_code")
    assert f"gcloud storage rsync -r {RUN_URL}/out $out" in command(down)
    assert f"gcloud storage cp {RUN_URL}/logs/worker-$w.log worker-$w.log" in command(logs_down)
    # the trainer resumes by itself from the newest complete checkpoint in checkpoint_dir
    assert f"coderl_jax.cli train --config configs/qwen25_coder_7b_v5p64.py checkpoint_dir={RUN_URL}/checkpoints" \
        in command(launch)
    assert f"{RUN_URL}/logs/worker-$w.log" in command(calls[-1])  # the logs, copied at the end too


def test_watch_downloads_a_hub_model_only_through_the_bucket(fake):
    args = [a if a != MODEL_GS else "Qwen/Qwen2.5-Coder-7B-Instruct" for a in WATCH]
    proc, calls = fake("watch.sh", *args, "--once", FAKE_TPU_STATE="PREEMPTED")
    assert proc.returncode == 0, proc.stderr
    once = [c for c in calls if "snapshot_download" in c[-1]]
    assert len(once) == 1 and worker(once[0]) == "--worker=0"
    assert f"gcloud storage ls {MODEL_GS}.staged" in command(once[0])  # skipped when the bucket has it


def test_watch_retries_a_restart_that_failed(fake):
    proc, calls = fake("watch.sh", *WATCH, FAKE_TPU_STATE="PREEMPTED,MISSING,READY", FAKE_EXIT_CODE="0",
                       FAKE_CREATE_RC="1,0")
    assert proc.returncode == 0, proc.stderr
    assert "restart failed at create; retrying at the next poll" in proc.stderr
    assert verbs(calls) == ["tpu-vm describe", "tpu-vm delete", "tpu-vm create",
                            "tpu-vm describe", *RESTART, *POLL]


def test_watch_gives_up_after_max_restarts(fake):
    proc, calls = fake("watch.sh", *WATCH, "--max-restarts", "1", FAKE_TPU_STATE="PREEMPTED")
    assert proc.returncode == 2 and "gave up after 1 restarts" in proc.stderr
    assert verbs(calls).count("tpu-vm create") == 2


def test_watch_relaunches_a_crashed_trainer_and_stops_when_done(fake):
    proc, calls = fake("watch.sh", *WATCH, "--once", FAKE_TPU_STATE="READY", FAKE_EXIT_CODE="1")
    assert proc.returncode == 0, proc.stderr
    assert verbs(calls) == [*POLL, "tpu-vm ssh"] and "coderl_jax.cli train" in command(calls[-1])
    proc, calls = fake("watch.sh", *WATCH, "--once", FAKE_TPU_STATE="READY", FAKE_EXIT_CODE="died")
    assert "trainer exited with status died" in proc.stderr and "nohup" in command(calls[-1])
    proc, calls = fake("watch.sh", *WATCH, "--once", FAKE_TPU_STATE="READY", FAKE_EXIT_CODE="0")
    assert proc.returncode == 0 and "finished" in proc.stderr
    assert verbs(calls) == POLL  # out_dir and logs copied one last time; nothing relaunched
    proc, calls = fake("watch.sh", *WATCH, "--queued", "--delete-when-done", FAKE_TPU_STATE="ACTIVE",
                       FAKE_EXIT_CODE="0")
    assert proc.returncode == 0 and verbs(calls) == ["queued-resources describe", *POLL[1:], "queued-resources delete"]


def test_watch_sets_up_a_slice_where_nothing_was_launched(fake):
    proc, calls = fake("watch.sh", *WATCH, "--once", FAKE_TPU_STATE="READY", FAKE_EXIT_CODE="missing")
    assert proc.returncode == 0, proc.stderr
    assert verbs(calls) == [*POLL, *RESTART[2:]]  # setup and launch on this slice, no delete / create


def test_watch_sync_without_a_bucket(fake):
    args = (*TARGET, "--accelerator-type", "v5p-64", "--config", "configs/qwen25_coder_7b_v5p64.py", "--once",
            "--sync", "gs://bucket/run")
    proc, calls = fake("watch.sh", *args, FAKE_TPU_STATE="READY")
    assert verbs(calls) == ["tpu-vm describe", "tpu-vm ssh", "tpu-vm ssh"]  # no logs without a bucket
    assert "gcloud storage rsync -r $out gs://bucket/run" in command(calls[2])
    proc, calls = fake("watch.sh", *args, FAKE_TPU_STATE="PREEMPTED")
    assert proc.returncode == 0, proc.stderr
    assert "gcloud storage rsync -r gs://bucket/run $out" in command(calls[5])
    assert "checkpoint_dir" not in command(calls[6])
