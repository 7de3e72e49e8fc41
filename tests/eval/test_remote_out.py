"""`coderl eval --out gs://...`: results written to a bucket (a local mirror copied up after each
benchmark), and a rerun on another machine resumes from what the bucket holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

pytest.importorskip("gcsfs")


def _objects(url: str, prefix: str) -> list[str]:
    query = urllib.parse.urlencode({"prefix": prefix})
    listing = json.loads(urllib.request.urlopen(f"{url}/storage/v1/b/bucket/o?{query}", timeout=10).read())
    return sorted(item["name"] for item in listing.get("items", []))


def _read(url: str, name: str) -> bytes:
    quoted = urllib.parse.quote(name, safe="")
    return urllib.request.urlopen(f"{url}/download/storage/v1/b/bucket/o/{quoted}?alt=media", timeout=10).read()


def _eval(env, limit: int, cache) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "coderl_jax.cli", "eval", "--benchmark", "humaneval", "--oracle", "canonical",
           "--limit", str(limit), "--out", "gs://bucket/evals/he", "--no-progress", "--workers", "1"]
    return subprocess.run(cmd, env={**env, "CODERL_CACHE": str(cache)}, capture_output=True, text=True, timeout=300)


def test_eval_writes_to_a_bucket_and_resumes_from_it(emulator, tmp_path):
    url, client_env, _ = emulator
    env = {**os.environ, **client_env, "JAX_PLATFORMS": "cpu"}
    first = _eval(env, 3, tmp_path / "machine_a")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "wrote gs://bucket/evals/he/summary.json" in first.stdout
    names = _objects(url, "evals/he/")
    assert {"evals/he/summary.json", "evals/he/humaneval/samples.jsonl"} <= set(names)
    assert len(_read(url, "evals/he/humaneval/samples.jsonl").decode().splitlines()) == 3

    # another machine (an empty cache, so an empty local mirror) extends the run to 5 problems
    second = _eval(env, 5, tmp_path / "machine_b")
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(_read(url, "evals/he/humaneval/summary.json"))
    assert (summary["run"]["evaluated_now"], summary["run"]["resumed_from"]) == (2, 3)
    assert summary["pass@1"] == 1.0
    assert len(_read(url, "evals/he/humaneval/samples.jsonl").decode().splitlines()) == 5
