"""The block-source layer: in-memory sources, the reduction every pass goes through."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_array_equal

from softreg._objective import CurvatureCache, Objective, SoftmaxLoss
from softreg._sources import ArraySource, Block, CallableSource, add_sums


def data(sparse=False, n_samples=1000, n_features=7, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    if sparse:
        X[X < 0.5] = 0
        X = sp.csr_matrix(X)
    return X, rng.integers(0, 3, n_samples), rng.uniform(0.5, 2, n_samples)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_array_source_blocks_cover_the_rows_once_in_order_without_copies(sparse):
    X, target, weight = data(sparse)
    source = ArraySource(X, target, weight, rows=300)
    blocks = list(source.blocks())
    assert [b.X.shape[0] for b in blocks] == [300, 300, 300, 100]
    assert source.shape() == (1000, 4)
    assert (source.n_features, source.dtype, source.sparse) == (7, X.dtype, sparse)
    stacked = (
        sp.vstack([b.X for b in blocks]).toarray() if sparse else np.vstack([b.X for b in blocks])
    )
    assert_array_equal(stacked, X.toarray() if sparse else X)
    assert_array_equal(np.concatenate([b.target for b in blocks]), target)
    assert_array_equal(np.concatenate([b.sample_weight for b in blocks]), weight)
    if not sparse:  # dense blocks are views of the caller's array
        assert all(np.shares_memory(b.X, X) for b in blocks)
    assert len(list(source.blocks())) == 4  # re-iterable


def _count_and_sum(index, block, scale):
    return float(block.X.shape[0]), scale * np.asarray(block.X.sum(axis=0)).ravel(), index


def test_reduce_adds_every_field_over_the_blocks_and_honours_every():
    X, target, _ = data()
    source = ArraySource(X, target, rows=100)
    rows, column_sums, indices = source.reduce(_count_and_sum, 2.0)
    assert rows == 1000
    np.testing.assert_allclose(column_sums, 2.0 * X.sum(axis=0), rtol=1e-13)
    assert indices == sum(range(10))
    rows, column_sums, indices = source.reduce(_count_and_sum, 1.0, every=3)
    assert rows == 400  # blocks 0, 3, 6, 9
    np.testing.assert_allclose(column_sums, X[np.r_[0:100, 300:400, 600:700, 900:1000]].sum(0))
    assert indices == 0 + 1 + 2 + 3  # positions in the strided scan


def test_reduce_of_no_blocks_is_none_and_add_sums_keeps_named_tuples():
    assert CallableSource(list, n_features=2, dtype=np.float64).reduce(_count_and_sum, 1) is None
    total = add_sums(None, Block(np.ones(2), np.ones(2), None)._replace(sample_weight=1.0))
    total = add_sums(total, Block(np.ones(2), 2 * np.ones(2), 3.0))
    assert isinstance(total, Block)
    assert_array_equal(total.X, [2.0, 2.0])
    assert total.sample_weight == 4.0


def test_callable_source_is_scanned_afresh_each_time():
    X, target, _ = data(n_samples=20)
    calls = []

    def blocks():
        calls.append(1)
        return [Block(X[:5], target[:5], None), Block(X[5:], target[5:], None)]

    source = CallableSource(blocks, n_features=7, dtype=np.float64)
    assert source.shape() == (20, 2)
    assert source.shape() == (20, 2)
    assert len(calls) == 2


def test_objective_is_the_same_over_any_blocking_of_the_rows():
    X, target, weight = data(n_samples=600)
    theta = np.random.default_rng(3).standard_normal(3 * 8) * 0.3
    values = []
    for rows in (1, 7, 600):
        objective = Objective(
            SoftmaxLoss(3), ArraySource(X, target, weight, rows=rows), alpha=0.1, fit_intercept=True
        )
        values.append(objective.loss_gradient(theta))
    for other in values[1:]:
        assert other.objective == pytest.approx(values[0].objective, rel=1e-13)
        np.testing.assert_allclose(other.gradient, values[0].gradient, rtol=1e-11, atol=1e-15)


def test_curvature_cache_travels_empty_and_is_shared_by_its_copies():
    # A Dask worker receives pickled copies: empty at first, never another θ's state, and one
    # cache per process for all the copies of one θ's cache (so products reuse its blocks).
    cache = CurvatureCache(1000)
    cache.states[0] = np.ones(3)
    cache.budget -= 24
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.states == {} and copy.budget == 1000
    assert pickle.loads(pickle.dumps(cache)) is copy
    assert pickle.loads(pickle.dumps(CurvatureCache(1000))) is not copy
