"""Fixtures shared by every test directory."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pool():
    """One sandboxed tracer pool (2 workers) for the whole session; a zygote that misbehaves in a
    hostile test is replaced by the pool itself."""
    from tracer.pool import TracerPool

    with TracerPool(workers=2) as p:
        yield p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory) -> Path:
    """One XLA compile cache directory for the `coderl train` runs of several tests: runs of the same
    programs in different tests (the tiny_cpu runs of the gs:// checkpoint and the preemption tests)
    compile them once. The cache is keyed by the program and the compiler's settings, so it never
    changes a result; it starts empty, so nothing comes from outside the test run."""
    return tmp_path_factory.mktemp("xla")


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """(url, environment for the clients, its log) of a GCS emulator holding the bucket `bucket`
    (gcs_emulator.py: gcp-storage-emulator with GCS's generation header and conditions)."""
    pytest.importorskip("gcp_storage_emulator")
    port = free_port()
    log = open(tmp_path_factory.mktemp("emulator") / "emulator.log", "w")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "train" / "gcs_emulator.py"), f"--port={port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/storage/v1/b/bucket", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail("the GCS emulator did not start")
            time.sleep(0.2)
    env = {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url, "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test",
           # gcsfs's bucket-type probe (zonal / hierarchical buckets) goes to an API the emulator lacks
           "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
    yield url, env, Path(log.name)
    proc.terminate()
    proc.wait(timeout=30)
    log.close()
