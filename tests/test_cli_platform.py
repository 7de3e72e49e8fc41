"""`coderl` picks the CPU platform where no TPU or GPU is attached, so that an installed libtpu (the
`tpu` extra, which `coderl plan` needs) stays silent on a CPU machine and the CPU allocator tuning
stays on. The decision is tested on fake device trees; the end-to-end run needs libtpu (skipped
without it: pip install 'coderl-jax[tpu]', PYTHONPATH with a libtpu package, or TPU_LIBRARY_PATH)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from coderl_jax.cpu_runtime import choose_platforms, gpu_attached, select_platform, tpu_attached

REPO = Path(__file__).resolve().parents[1]


def _pci(root: Path, slot: str, vendor: str, device: str) -> None:
    d = root / "sys/bus/pci/devices" / slot
    d.mkdir(parents=True)
    (d / "vendor").write_text(vendor + "\n")
    (d / "device").write_text(device + "\n")


def _vfio_group(root: Path, group: str, vendor: str | None) -> None:
    (root / "dev/vfio").mkdir(parents=True, exist_ok=True)
    (root / "dev/vfio" / group).write_text("")
    if vendor is not None:
        d = root / "sys/kernel/iommu_groups" / group / "devices" / "0000:00:05.0"
        d.mkdir(parents=True)
        (d / "vendor").write_text(vendor + "\n")


def test_choose_platforms():
    assert choose_platforms({}, tpu=False, gpu=False) == "cpu"
    assert choose_platforms({}, tpu=True, gpu=False) is None  # JAX takes the TPU
    assert choose_platforms({}, tpu=False, gpu=True) is None  # JAX takes the GPU
    for var in ("JAX_PLATFORMS", "JAX_PLATFORM_NAME", "JAX_FORCE_TPU_INIT"):  # the user's choice wins
        assert choose_platforms({var: "tpu"}, tpu=False, gpu=False) is None
    assert choose_platforms({"JAX_PLATFORMS": " "}, tpu=False, gpu=False) == "cpu"  # blank = not set


def test_tpu_attached_on_fake_machines(tmp_path):
    def machine(name):
        root = tmp_path / name
        (root / "dev").mkdir(parents=True)
        return root

    cpu_vm = machine("gce_cpu_vm")  # Google's vendor id on its virtual NIC (gVNIC) is not a TPU
    _pci(cpu_vm, "0000:00:04.0", "0x1ae0", "0x0042")
    _pci(cpu_vm, "0000:00:05.0", "0x1af4", "0x1000")
    (cpu_vm / "dev/vfio").mkdir()
    (cpu_vm / "dev/vfio/vfio").write_text("")  # the VFIO container node alone is no device
    (cpu_vm / "dev/accel").mkdir()  # the kernel's DRM accel/ directory (NPUs), not a TPU node
    assert not tpu_attached(cpu_vm) and not gpu_attached(cpu_vm)

    v4 = machine("v4")
    (v4 / "dev/accel0").write_text("")
    assert tpu_attached(v4)

    v5p_pci = machine("v5p_pci")  # a chip on the PCI bus, as JAX's own check sees it
    _pci(v5p_pci, "0000:00:06.0", "0x1ae0", "0x0062")
    assert tpu_attached(v5p_pci)

    v6e = machine("v6e")  # v5e / v6e: VFIO groups of Google devices
    _vfio_group(v6e, "0", "0x1ae0")
    assert tpu_attached(v6e)

    other_vfio = machine("other_vfio")  # a VFIO group of some other passed-through device
    _vfio_group(other_vfio, "12", "0x8086")
    assert not tpu_attached(other_vfio)

    unknown_vfio = machine("unknown_vfio")  # cannot tell (no sysfs in the container): leave JAX to choose
    _vfio_group(unknown_vfio, "3", None)
    assert tpu_attached(unknown_vfio)

    gpu = machine("gpu")
    (gpu / "dev/nvidia0").write_text("")
    assert gpu_attached(gpu) and not tpu_attached(gpu)
    amd = machine("amd")
    (amd / "dev/kfd").write_text("")
    assert gpu_attached(amd)


def test_select_platform_sets_cpu_only_where_nothing_is_attached(tmp_path):
    bare = tmp_path / "bare"
    (bare / "dev").mkdir(parents=True)
    env = {"PATH": "/bin"}
    assert select_platform(env, root=bare) == "cpu" and env["JAX_PLATFORMS"] == "cpu"
    env = {"JAX_PLATFORMS": "cuda"}
    assert select_platform(env, root=bare) is None and env["JAX_PLATFORMS"] == "cuda"
    tpu = tmp_path / "tpu"
    (tpu / "dev").mkdir(parents=True)
    (tpu / "dev/accel0").write_text("")
    env = {}
    assert select_platform(env, root=tpu) is None and "JAX_PLATFORMS" not in env


def _libtpu_path() -> str | None:
    from coderl_jax.plan.planner import find_libtpu

    return find_libtpu()


LIBTPU_NOISE = ("TPU_WORKER_HOSTNAMES", "libtpu_init_utils", "TPU accelerator type")


@pytest.mark.skipif(_libtpu_path() is None, reason="libtpu not installed (pip install 'coderl-jax[tpu]')")
@pytest.mark.skipif(tpu_attached() or gpu_attached(), reason="an accelerator is attached to this machine")
def test_coderl_is_quiet_and_tuned_on_a_cpu_machine_with_libtpu(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "JAX_PLATFORM_NAME", "XLA_FLAGS")}
    env.update(CODERL_CACHE=str(tmp_path / "cache"), CODERL_COMPILE_CACHE="0", TPU_LIBRARY_PATH=_libtpu_path())
    # the control: JAX alone, with libtpu loadable, tries the TPU first and libtpu complains
    control = subprocess.run([sys.executable, "-c", "import jax; print(jax.devices()[0].platform)"], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert control.returncode == 0, control.stderr[-3000:]
    if not any(s in control.stderr for s in LIBTPU_NOISE):
        pytest.skip(f"this libtpu initialises silently on a CPU machine: {control.stderr[-500:]!r}")

    probe = ("import json; from coderl_jax.cli import prepare_process; got = prepare_process(); import jax; "
             "print(json.dumps({**got, 'backend': jax.devices()[0].platform}))")
    proc = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["platform"] == "cpu" and got["backend"] == "cpu"
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert got["cpu_tuning"] == {"malloc_arena_max": 1, "malloc_mmap_max": 0, "malloc_trim_threshold": -1}
    assert not any(s in proc.stderr for s in LIBTPU_NOISE), proc.stderr[-3000:]

    # a real command end to end: sampling from a tiny random model initialises JAX's backends
    from coderl_jax.models.tiny import make_tiny_model

    model = make_tiny_model(tmp_path / "tiny")
    proc = subprocess.run([sys.executable, "-m", "coderl_jax.cli", "generate", "--model", str(model), "--prompt", "hi",
                           "--max-new-tokens", "2", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not any(s in proc.stderr for s in LIBTPU_NOISE), proc.stderr[-3000:]
    assert proc.stderr.strip() == "", proc.stderr[-3000:]


def test_plan_stays_on_the_cpu_after_jax_chose_the_tpu():
    """On a TPU VM, importing jax (as `coderl` does for its compile cache) sets jax_platforms to
    "tpu,cpu"; `coderl plan` compiles only, so its environment puts JAX back on the CPU before any
    backend starts. Simulated here without a TPU: no backend is started."""
    script = ("import os, jax\n"
              "jax.config.update('jax_platforms', 'tpu,cpu')  # what cloud_tpu_init does on a TPU VM\n"
              "from coderl_jax.plan.cli import _prepare_environment\n"
              "_prepare_environment('/nonexistent/libtpu.so')\n"
              "print(jax.config.jax_platforms, os.environ['JAX_PLATFORMS'], os.environ['TPU_LIBRARY_PATH'])\n")
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "JAX_PLATFORM_NAME", "TPU_LIBRARY_PATH")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["cpu", "cpu", "/nonexistent/libtpu.so"]
