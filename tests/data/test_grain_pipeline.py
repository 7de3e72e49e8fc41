"""The grain pipeline: seeded shuffling, epochs, host sharding, batching, exact resume."""

import json
from collections import Counter

import pytest
from problem_files import canonical_rows, write_jsonl

from coderl_jax.data import DataError, make_problem_iterator
from coderl_jax.data.builder import build_problem_dataset

N = 23


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("grain")
    return build_problem_dataset(write_jsonl(root / "train.jsonl", canonical_rows(N)), root / "tfds")


ALL_IDS = [f"p{i:03d}" for i in range(N)]


def ids(dataset, n=None, **kw):
    kw.setdefault("shard_index", 0)
    kw.setdefault("shard_count", 1)
    it = make_problem_iterator(dataset, **kw)
    out = []
    for x in it:
        out.append([p.id for p in x] if isinstance(x, list) else x.id)
        if n is not None and len(out) == n:
            break
    return out


def test_shuffle_is_seeded(dataset):
    a = ids(dataset, num_epochs=1, seed=1)
    assert a == ids(dataset, num_epochs=1, seed=1)
    assert a != ids(dataset, num_epochs=1, seed=2)
    assert sorted(a) == ALL_IDS and a != ALL_IDS
    assert ids(dataset, num_epochs=1, shuffle=False) == ALL_IDS


def test_epochs_repeat_every_record_once_each(dataset):
    out = ids(dataset, num_epochs=3, seed=5)
    assert len(out) == 3 * N
    epochs = [out[i * N:(i + 1) * N] for i in range(3)]
    assert all(sorted(e) == ALL_IDS for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled every epoch
    forever = ids(dataset, n=4 * N, num_epochs=None, seed=5)
    assert forever[:3 * N] == out and sorted(forever[3 * N:]) == ALL_IDS


def test_host_shards_partition_the_data(dataset):
    shards = [ids(dataset, num_epochs=1, seed=3, shard_index=i, shard_count=2) for i in range(2)]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == ALL_IDS
    assert (len(shards[0]), len(shards[1])) == (12, 11)
    even = [ids(dataset, num_epochs=1, shard_index=i, shard_count=2, even_shards=True) for i in range(2)]
    assert len(even[0]) == len(even[1]) == 11 and not set(even[0]) & set(even[1])
    three = [ids(dataset, num_epochs=2, seed=3, shard_index=i, shard_count=3) for i in range(3)]
    assert Counter(sum(three, [])) == Counter(ALL_IDS * 2)


def test_batches(dataset):
    batches = ids(dataset, num_epochs=1, batch_size=5)
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    assert sorted(sum(batches, [])) == ALL_IDS
    assert [len(b) for b in ids(dataset, num_epochs=1, batch_size=5, drop_remainder=True)] == [5] * 4


@pytest.mark.parametrize("k, m, kw", [
    (7, 30, dict(num_epochs=None)),                           # resume mid-epoch, run across epochs
    (3, 6, dict(num_epochs=2, batch_size=4)),                 # batched
    (2, 5, dict(num_epochs=None, shard_index=1, shard_count=2)),
])
def test_resume_matches_uninterrupted_run(dataset, k, m, kw):
    kw = {"seed": 11, "shard_index": 0, "shard_count": 1, **kw}

    def key(x):
        return [p.id for p in x] if isinstance(x, list) else x.id

    reference = make_problem_iterator(dataset, **kw)
    expected = [key(next(reference)) for _ in range(k + m)]
    first = make_problem_iterator(dataset, **kw)
    assert [key(next(first)) for _ in range(k)] == expected[:k]
    state = json.loads(json.dumps(first.get_state()))  # survives JSON
    resumed = make_problem_iterator(dataset, **kw)
    resumed.set_state(state)
    assert [key(next(resumed)) for _ in range(m)] == expected[k:]


def test_state_of_another_pipeline_is_refused(dataset):
    it = make_problem_iterator(dataset, seed=1, shard_index=0, shard_count=1)
    next(it)
    other = make_problem_iterator(dataset, seed=2, shard_index=0, shard_count=1)
    with pytest.raises(DataError, match="seed: saved 1, now 2"):
        other.set_state(it.get_state())
    with pytest.raises(DataError, match="not a problem-iterator state"):
        other.set_state({"next_index": 3})


def test_orbax_checkpoint_through_grain_handler(dataset, tmp_path):
    import grain
    import orbax.checkpoint as ocp

    kw = dict(seed=4, shard_index=0, shard_count=1, batch_size=2)
    it = make_problem_iterator(dataset, **kw)
    for _ in range(3):
        next(it)
    expected = [[p.id for p in next(it)] for _ in range(2)]
    it = make_problem_iterator(dataset, **kw)
    for _ in range(3):
        next(it)
    with ocp.Checkpointer(grain.checkpoint.CheckpointHandler()) as ckpt:
        ckpt.save(tmp_path / "ckpt", args=grain.checkpoint.CheckpointSave(it))
        fresh = make_problem_iterator(dataset, **kw)
        ckpt.restore(tmp_path / "ckpt", args=grain.checkpoint.CheckpointRestore(fresh))
    assert [[p.id for p in next(fresh)] for _ in range(2)] == expected


def test_source_file_and_defaults(dataset, tmp_path):
    src = write_jsonl(tmp_path / "small.jsonl", canonical_rows(4))
    it = make_problem_iterator(str(src), data_dir=str(tmp_path / "tfds"), num_epochs=1)  # jax.process_*()
    assert it.settings["shard_count"] == 1 and it.records_per_epoch == 4
    assert sorted(p.id for p in it) == ALL_IDS[:4]
    with pytest.raises(ValueError, match="shard_index 2"):
        make_problem_iterator(dataset, shard_index=2, shard_count=2)
    with pytest.raises(DataError, match="no such file"):
        make_problem_iterator(tmp_path / "missing", shard_index=0, shard_count=1)
