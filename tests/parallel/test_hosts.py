"""The multi-host helpers' host-side rules (the 2-process behaviour is covered end to end by
tests/train/test_multihost_loop.py)."""

from __future__ import annotations

import numpy as np
import pytest

from coderl_jax.parallel.hosts import HostShardedTracer, gather_objects, host_block, interleave, split_counts


@pytest.mark.parametrize("total,parts", [(8, 2), (7, 2), (5, 4), (3, 4), (0, 3), (9, 1)])
def test_split_counts_cover_the_items_once(total, parts):
    counts = split_counts(total, parts)
    assert sum(counts) == total and len(counts) == parts
    assert max(counts) - min(counts) <= 1 and counts == sorted(counts, reverse=True)
    blocks = [host_block(total, i, parts) for i in range(parts)]
    assert [i for b in blocks for i in range(total)[b]] == list(range(total))  # contiguous, in order


@pytest.mark.parametrize("n,hosts", [(12, 2), (12, 3), (12, 4), (8, 1)])
def test_interleaving_host_shards_restores_the_dataset_order(n, hosts):
    # grain's host sharding: host h reads records h, h+H, h+2H, ... of an unshuffled dataset;
    # each host contributing its next n/H records gives back the dataset's own order
    data = list(range(100))
    shards = [data[h::hosts] for h in range(hosts)]
    per_host = split_counts(n, hosts)
    assert interleave([shard[:k] for shard, k in zip(shards, per_host)]) == data[:n]


def test_interleave_uneven_lists():
    assert interleave([["a0", "a1", "a2"], ["b0"], []]) == ["a0", "b0", "a1", "a2"]


def test_single_process_is_the_identity():
    obj = {"x": np.arange(3), "y": "text"}
    (got,) = gather_objects(obj)
    assert got is obj

    class Recorder:
        def __init__(self):
            self.calls = []

        def run_tests(self, requests, **kw):
            self.calls.append(("run_tests", list(requests)))
            return [{"id": r["id"], "passed": True} for r in requests]

        def trace(self, requests, **kw):
            self.calls.append(("trace", list(requests)))
            return [{"id": r["id"]} for r in requests]

    inner = Recorder()
    tracer = HostShardedTracer(inner)
    reqs = [{"id": str(i)} for i in range(5)]
    assert [r["id"] for r in tracer.run_tests(reqs)] == [str(i) for i in range(5)]
    assert [r["id"] for r in tracer.trace(reqs)] == [str(i) for i in range(5)]
    assert inner.calls == [("run_tests", reqs), ("trace", reqs)]  # one host runs every request
