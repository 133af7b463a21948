import threading

import jax
import numpy as np
import pyarrow as pa
import pytest

from jfx.core import Dataset
from jfx.errors import DataValidationError, InvalidArgumentError


def _ids(ds, epoch=0, **kw):
    """Row ids (column "i") per batch, and weights, from the device iterator."""
    out = []
    for _floats, _ints, label, weight in ds.device_batches(epoch, **kw):
        out.append((np.asarray(label), np.asarray(weight)))
    return out


@pytest.fixture
def files(parquet_writer):
    n = 1000
    cols = {"f": np.arange(n, dtype=np.float64), "v": np.arange(2 * n, dtype=np.float32).reshape(n, 2),
            "k": np.arange(n) % 7, "i": np.arange(n)}
    return parquet_writer(cols, shards=3)


def _ds(files, **kw):
    base = {"batch_size": 64, "shuffle_buffer": 200, "seed": 3, "read_rows": 100}
    return Dataset.from_parquet(files, ["f", "v", "k"], "i", **{**base, **kw})


def test_shuffle_is_deterministic_per_seed_and_epoch(files):
    a = np.concatenate([y for y, _ in _ids(_ds(files), 0)])
    b = np.concatenate([y for y, _ in _ids(_ds(files), 0)])
    c = np.concatenate([y for y, _ in _ids(_ds(files), 1)])
    d = np.concatenate([y for y, _ in _ids(_ds(files, seed=4), 0)])
    assert (a == b).all()
    assert not (a == c).all() and not (a == d).all()
    assert not (a == np.sort(a)).all()


def test_no_shuffle_keeps_file_order(files):
    ids = np.concatenate([y for y, _ in _ids(_ds(files, shuffle_buffer=0, remainder="pad"))])
    assert ids[:1000].tolist() == list(range(1000))


@pytest.mark.parametrize("prefetch", [0, 2])
def test_pad_delivers_every_row_exactly_once_with_zero_weight_padding(files, prefetch):
    batches = _ids(_ds(files, remainder="pad", prefetch=prefetch), 2)
    assert len(batches) == 16 == _ds(files, remainder="pad").num_batches()
    ids = np.concatenate([y for y, _ in batches])
    w = np.concatenate([w for _, w in batches])
    assert sorted(ids[w == 1].tolist()) == list(range(1000))
    assert (w == 0).sum() == 16 * 64 - 1000
    assert (w[:1000] == 1).all()  # padding only at the end


def test_drop_remainder(files):
    batches = _ids(_ds(files, remainder="drop"))
    assert len(batches) == 15 == len(_ds(files))
    ids = np.concatenate([y for y, _ in batches])
    assert len(set(ids.tolist())) == 960 and all((w == 1).all() for _, w in batches)


def test_features_are_unpacked_with_dtypes_and_shapes(files):
    ds = _ds(files, shuffle_buffer=0)
    batch = next(iter(ds))
    assert batch.features["f"].shape == (64,) and batch.features["f"].dtype == np.float32
    assert batch.features["v"].shape == (64, 2)
    assert batch.features["k"].dtype == np.int32
    ids = np.asarray(batch.label)
    assert (np.asarray(batch.features["f"]) == ids).all()
    assert (np.asarray(batch.features["v"])[:, 1] == 2 * ids + 1).all()
    assert (np.asarray(batch.features["k"]) == ids % 7).all()
    assert ds.feature_shapes == {"f": ("float32", ()), "v": ("float32", (2,)), "k": ("int32", ())}


def test_start_batch_resumes_mid_epoch(files):
    full = _ids(_ds(files), 1)
    rest = _ids(_ds(files), 1, start_batch=5)
    assert len(rest) == len(full) - 5
    assert all((a[0] == b[0]).all() for a, b in zip(full[5:], rest, strict=True))


def test_grouped_batches_for_gradient_accumulation(files):
    ds = _ds(files, shuffle_buffer=0, remainder="pad")
    groups = list(ds.host_batches(0, group=4))
    assert len(groups) == ds.num_batches(4) == 4
    floats, _ints, label, _weight = groups[0]
    assert floats.shape == (4, 64, 3) and label.shape == (4, 64)
    assert label[1, 0] == 64


def test_stopping_early_ends_the_prefetch_thread(files):
    before = threading.active_count()
    it = _ds(files, prefetch=2).device_batches(0)
    next(it)
    it.close()
    assert threading.active_count() <= before


def test_string_columns_through_encoders_and_errors():
    table = pa.table({"s": ["a", "b", None, "zz"], "x": [1.0, 2.0, 3.0, None], "y": [0, 1, 0, 1]})
    ds = Dataset.from_table(table, ["s"], "y", batch_size=4, shuffle_buffer=0,
                            encoders={"s": {"vocabulary": ["a", "b"]}})
    assert np.asarray(next(iter(ds)).features["s"]).tolist() == [0, 1, 2, 2]
    with pytest.raises(DataValidationError, match="'s' holds strings"):
        Dataset.from_table(table, ["s"], "y", batch_size=4)
    with pytest.raises(DataValidationError, match="'x' has 1 missing"):
        list(Dataset.from_table(table, ["x"], "y", batch_size=4))
    with pytest.raises(DataValidationError, match="'nope' is not in the data"):
        Dataset.from_table(table, ["nope"], "y", batch_size=4)
    with pytest.raises(InvalidArgumentError):
        Dataset.from_table(table, ["x"], "y", batch_size=4, remainder="keep")


def test_batches_are_sharded_over_the_data_mesh(files):
    batch = next(iter(_ds(files)))
    assert batch.label.sharding.spec == jax.sharding.PartitionSpec("data")
    assert len(batch.label.addressable_shards) == jax.local_device_count()


def _reference_order(files, shuffle_buffer, seed, epoch, read_rows):
    """Row ids of an epoch by the documented algorithm, applied eagerly: each chunk joins
    the buffer, is permuted, and all but ``shuffle_buffer`` rows go out in that order."""
    import pyarrow.parquet as pq

    rng = np.random.default_rng([seed, epoch])
    buffer = np.empty(0, np.int64)
    out = []
    for i in rng.permutation(len(files)):
        for b in pq.ParquetFile(files[i]).iter_batches(batch_size=read_rows, columns=["i"]):
            pool = np.concatenate([buffer, b.column("i").to_numpy()])
            perm = rng.permutation(len(pool))
            keep = min(shuffle_buffer, len(pool))
            out.append(pool[perm[: len(pool) - keep]])
            buffer = pool[perm[len(pool) - keep:]]
    out.append(buffer[rng.permutation(len(buffer))])
    return np.concatenate(out)


@pytest.mark.parametrize("shuffle_buffer", [200, 5000])
def test_shuffled_order_matches_the_eager_reference(files, shuffle_buffer):
    # The shuffle is applied batch by batch (lazily); the order must stay the documented one,
    # so checkpoints resume onto the same data.
    ds = _ds(files, shuffle_buffer=shuffle_buffer, remainder="pad")
    for epoch in (0, 1):
        _, _, label, weight = zip(*ds.host_batches(epoch), strict=True)
        ids = np.concatenate(label)[np.concatenate(weight) > 0]
        assert ids.tolist() == _reference_order(files, shuffle_buffer, 3, epoch, 100).tolist()


@pytest.mark.parametrize("prefetch", [0, 2])
@pytest.mark.parametrize("shuffle_buffer", [0, 200])
def test_engine_feed_gives_the_device_batches(files, prefetch, shuffle_buffer):
    # fit feeds host arrays on CPU devices (its jitted step shards them), read ahead by
    # chunk on the prefetch thread; the batches must equal device_batches'.
    ds = _ds(files, prefetch=prefetch, shuffle_buffer=shuffle_buffer, remainder="pad")
    for group, start in [(1, 0), (1, 5), (3, 1)]:
        fed = list(ds.feed_batches(1, start_batch=start, group=group))
        dev = list(ds.device_batches(1, start_batch=start, group=group))
        assert len(fed) == len(dev) == ds.num_batches(group) - start
        for a, b in zip(fed, dev, strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    if jax.default_backend() == "cpu":
        assert all(isinstance(a, np.ndarray) for a in fed[0])


def test_closing_the_engine_feed_ends_its_thread(files):
    before = threading.active_count()
    it = _ds(files, prefetch=2).feed_batches(0)
    next(it)
    it.close()
    assert threading.active_count() <= before
    _ds(files, prefetch=2).feed_batches(0).close()  # never started: no thread either
    assert threading.active_count() <= before
