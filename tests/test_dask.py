"""Dask: the objective reduced on the workers of a LocalCluster equals the in-memory one."""

import contextlib
import os
import signal
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from softreg import LinearRegression, SoftmaxRegression, _dask, open_dataset  # noqa: E402
from softreg._dask import DaskDataLostError, DaskDataset, DaskSource, local_cluster  # noqa: E402
from softreg._objective import Objective, SoftmaxLoss  # noqa: E402
from softreg._solvers import minimize  # noqa: E402
from softreg._sources import ArraySource  # noqa: E402

# Sums over chunks are added in another order than over in-memory blocks: rounding only.
RTOL = 1e-12


@pytest.fixture(scope="module")
def client():
    """One cluster for the module: two worker processes of one thread each."""
    os.environ["MALLOC_TRIM_THRESHOLD_"] = "65536"  # as an earlier LocalCluster leaves it
    cluster = local_cluster(2)
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        # distributed 2024.1 (the oldest supported) can race at close after the worker-kill
        # test replaced a worker: its status watcher looks up the removed worker's address and
        # raises KeyError (seen once in `make test-oldest`). The cluster is shut down either
        # way, and every result was checked before teardown.
        with contextlib.suppress(KeyError):
            cluster.close()


def problem(n_samples=3000, n_features=5, n_classes=3, seed=0, soft=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features)) + rng.uniform(-2, 2, n_features)
    coef = rng.standard_normal((n_classes, n_features))
    logits = X @ coef.T
    y = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    if soft:
        y = np.exp(logits - logits.max(axis=1, keepdims=True))
        y /= y.sum(axis=1, keepdims=True)
    return X, y, rng.uniform(0.5, 2.0, n_samples)


def as_dask(*arrays, rows=700):
    return [None if a is None else da.from_array(a, chunks=(rows, *a.shape[1:])) for a in arrays]


def objectives(X, target, weight, n_classes, alpha=1e-3, rows=700):
    """The same objective over a DaskSource and over an in-memory ArraySource."""
    loss = SoftmaxLoss(n_classes)
    dask_source = DaskSource(*as_dask(X, target, weight, rows=rows), n_outputs=n_classes)
    memory = ArraySource(X, target, weight, n_outputs=n_classes)
    return [Objective(loss, s, alpha=alpha, fit_intercept=True) for s in (dask_source, memory)]


@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_dask_source_passes_equal_the_in_memory_ones(client, soft, weighted):
    X, y, weight = problem(soft=soft)
    on_dask, in_memory = objectives(X, y, weight if weighted else None, 3)
    rng = np.random.default_rng(1)
    theta, direction = rng.standard_normal((2, on_dask.n_params))
    mine, theirs = on_dask.loss_gradient(theta), in_memory.loss_gradient(theta)
    assert mine.objective == pytest.approx(theirs.objective, rel=RTOL)
    assert_allclose(mine.gradient, theirs.gradient, rtol=RTOL, atol=RTOL * theirs.gradient_norm)
    assert mine.gap_bound == pytest.approx(theirs.gap_bound, rel=1e-10)  # a difference of sums
    product, expected = on_dask.hessp(theta)(direction), in_memory.hessp(theta)(direction)
    assert_allclose(product, expected, rtol=RTOL, atol=RTOL * np.linalg.norm(expected))
    assert on_dask.source.shape() == (3000, 5)


def _count_and_sum(index, block, scale):
    return float(block.X.shape[0]), scale * block.X.sum(axis=0), index


def test_reduce_strides_over_blocks_as_an_in_memory_source_does(client):
    X, y, _ = problem(n_samples=1000)
    source = DaskSource(*as_dask(X, y, rows=100), None, n_outputs=3)
    rows, column_sums, indices = source.reduce(_count_and_sum, 2.0)
    assert (rows, indices) == (1000, sum(range(10)))
    assert_allclose(column_sums, 2.0 * X.sum(axis=0), rtol=RTOL)
    rows, column_sums, indices = source.reduce(_count_and_sum, 1.0, every=3)
    expected = ArraySource(X, y, rows=100).reduce(_count_and_sum, 1.0, every=3)
    assert (rows, indices) == (expected[0], expected[2]) == (400, 0 + 1 + 2 + 3)
    assert_allclose(column_sums, expected[1], rtol=RTOL)
    assert_array_equal(np.vstack([b.X for b in source.blocks()]), X)


def test_local_cluster_workers_keep_glibcs_adaptive_malloc(client):
    # Dask's default MALLOC_TRIM_THRESHOLD_ made a pass's work on a worker twice as slow.
    assert client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_") == dict.fromkeys(client.nthreads())
    assert client.run(os.environ.get, "OPENBLAS_NUM_THREADS") == dict.fromkeys(
        client.nthreads(), "1"
    )  # Dask's other settings are kept
    assert client.nthreads() and set(client.nthreads().values()) == {1}


def test_every_way_to_run_a_pass_returns_the_same_bits(client, monkeypatch):
    X, y, weight = problem()
    on_dask, in_memory = objectives(X, y, weight, 3, rows=300)
    source = on_dask.source
    theta = np.random.default_rng(3).standard_normal(on_dask.n_params)
    by_actors = on_dask.loss_gradient(theta)
    assert len(source._plan()) == 2  # one group per single-thread worker, one actor per group
    assert len(source._holders) == 2 and source._rebuilds == 0

    def same(evaluation):
        assert evaluation.objective == by_actors.objective
        assert_array_equal(evaluation.gradient, by_actors.gradient)

    monkeypatch.setattr(_dask, "_REBUILDS", -1)  # no actors: one task per group
    same(on_dask.loss_gradient(theta))
    monkeypatch.setattr(_dask, "_EMBED_BYTES", 0)  # θ shipped by a task of its own
    same(on_dask.loss_gradient(theta))
    # One group per chunk (10) added by tasks of two in a tree (5, 3, 2, then the driver).
    chunks = [
        _dask._Group(group.worker, [spec], group.parts[3 * i : 3 * i + 3], [span])  # X, y, w
        for group in source._plan()
        for i, (spec, span) in enumerate(zip(group.specs, group.spans, strict=True))
    ]
    monkeypatch.setattr(source, "_groups", chunks)
    monkeypatch.setattr(_dask, "_FAN_IN", 2)
    tree = on_dask.loss_gradient(theta)
    monkeypatch.setattr(source, "_client", None)  # any scheduler: a task per chunk
    graph = on_dask.loss_gradient(theta)
    expected = in_memory.loss_gradient(theta)
    for evaluation in (tree, graph, by_actors):
        assert evaluation.objective == pytest.approx(expected.objective, rel=RTOL)
        assert_allclose(evaluation.gradient, expected.gradient, rtol=RTOL, atol=RTOL)


def test_scan_finds_classes_over_all_chunks_with_totals_and_moments(client):
    X, _, weight = problem(n_samples=1000)
    y = np.array(["b", "c"] * 500, dtype=object)
    y[950] = "a"  # in the last chunk only
    dataset = DaskDataset(*as_dask(X, y, weight, rows=300))
    summary = dataset.scan(moments=True)
    assert summary.classes.tolist() == ["a", "b", "c"]
    assert summary.n_samples == 1000
    for k, label in enumerate(summary.classes):
        assert summary.class_totals[k] == pytest.approx(weight[y == label].sum(), rel=RTOL)
        assert summary.class_counts[k] == np.count_nonzero(y == label)
    assert summary.weight_total == pytest.approx(weight.sum(), rel=RTOL)
    mean = np.average(X, axis=0, weights=weight)
    assert_allclose(summary.mean, mean, rtol=RTOL)
    assert_allclose(summary.std, np.sqrt(np.average((X - mean) ** 2, 0, weight)), rtol=RTOL)
    source = dataset.source(classes=summary.classes)
    codes = np.concatenate([block.target for block in source.blocks()])
    assert_array_equal(summary.classes[codes], y)


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_minimize_over_dask_reaches_the_in_memory_optimum(client, solver):
    X, y, weight = problem()
    on_dask, in_memory = objectives(X, y, weight, 3)
    results = [
        minimize(o, np.zeros(o.n_params), solver=solver, tol=1e-12, max_iter=500)
        for o in (on_dask, in_memory)
    ]
    assert results[0].evaluation.objective == pytest.approx(results[1].evaluation.objective, 1e-10)
    coef = [r.theta[: on_dask.n_coef] for r in results]
    assert_allclose(coef[0], coef[1], rtol=1e-8, atol=1e-8)
    # Both fits certify a gap of ~2e-14, which bounds the intercepts' distance only to
    # sqrt(2 gap / curvature) ~ 1e-6: L-BFGS amplifies the chunk sums' different rounding
    # into differences of ~1e-8 there.
    assert_allclose(results[0].theta[-3:], results[1].theta[-3:], atol=1e-7)


def test_bad_chunks_are_errors_naming_the_chunk(client):
    X, y, weight = problem(n_samples=1000)
    dX, dy = as_dask(X, y, rows=300)
    with pytest.raises(ValueError, match=r"`y` chunk 0 has 250 rows but `X` chunk 0 has 300"):
        DaskDataset(dX, da.from_array(y, chunks=250))
    with pytest.raises(ValueError, match=r"`y` must have one row per row of `X` \(1000\); got 999"):
        DaskDataset(dX, dy[:999])
    with pytest.raises(ValueError, match=r"`X` has unknown chunk sizes \(NaN\).*chunk 0"):
        DaskDataset(dX[dX[:, 0] > 0], dy)
    with pytest.raises(TypeError, match=r"`y` must be a dask.array.Array like `X`; got ndarray"):
        DaskDataset(dX, y)
    with pytest.warns(UserWarning, match=r"`X` has its 5 columns in 2 chunks; rechunking"):
        assert DaskDataset(dX.rechunk({1: 3}), dy).X.numblocks == (4, 1)
    bad = X.copy()
    bad[650, 3] = np.nan
    with pytest.raises(ValueError, match=r"`X` chunk 2 \(rows 600 to 899\) .* nan in row 650"):
        DaskDataset(*as_dask(bad, y, rows=300)).scan()
    negative = weight.copy()
    negative[10] = -1
    with pytest.raises(ValueError, match=r"`sample_weight` chunk 0 \(rows 0 to 299\) must be non"):
        DaskDataset(dX, dy, da.from_array(negative, chunks=300)).scan()
    soft = np.full((1000, 2), 0.5)
    soft[420] = [0.5, 0.6]
    with pytest.raises(ValueError, match=r"`y` chunk 1 \(rows 300 to 599\): `y` must hold prob"):
        DaskDataset(dX, da.from_array(soft, chunks=(300, 2))).scan()
    y = y % 2
    y[950] = 2
    dy = da.from_array(y, chunks=300)
    with pytest.raises(
        ValueError, match=r"`y` chunk 3 \(rows 900 to 999\) holds the label 2 \(row 950\), wh"
    ):
        DaskDataset(dX, dy).source(classes=np.array([0, 1])).reduce(_count_and_sum, 1.0)


def test_a_worker_killed_mid_fit_leaves_the_optimum_unchanged(client):
    rng = da.random.default_rng(0)
    X = rng.standard_normal((20000, 6), chunks=(2500, 6))  # generated on the workers
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    dataset = DaskDataset(X, y)
    source = dataset.source(classes=dataset.scan().classes)
    objective = Objective(SoftmaxLoss(3), source, alpha=1e-3, fit_intercept=True)
    expected = minimize(
        objective, np.zeros(objective.n_params), solver="lbfgs", tol=1e-10, max_iter=500
    )
    pids = list(client.run(os.getpid).values())

    def kill(info):
        if info.iteration == 3:
            os.kill(pids[0], signal.SIGKILL)

    result = minimize(
        objective,
        np.zeros(objective.n_params),
        solver="lbfgs",
        tol=1e-10,
        max_iter=500,
        callback=kill,
    )
    assert pids[0] not in client.run(os.getpid).values()  # the worker did die
    # The pass after the kill ran as tasks, which Dask placed next to the recomputed chunks,
    # and the next pass rebuilt the workers' actors from them: once.
    assert source._rebuilds == 1 and len(source._holders) == len(source._plan())
    assert result.evaluation.objective == expected.evaluation.objective
    assert_array_equal(result.theta, expected.theta)
    client.wait_for_workers(2)


def test_chunks_scattered_from_the_client_lost_with_a_worker_are_an_error(client):
    X, y, _ = problem(n_samples=2000)
    futures = client.scatter([X[:1000], X[1000:]]), client.scatter([y[:1000], y[1000:]])
    dX, dy = (
        da.concatenate([da.from_delayed(f, (1000, *a.shape[1:]), a.dtype) for f in part])
        for part, a in zip(futures, (X, y), strict=True)
    )
    objective = Objective(
        SoftmaxLoss(3), DaskSource(dX, dy, n_outputs=3), alpha=1e-3, fit_intercept=True
    )
    holders = {w for ws in client.who_has(futures[0] + futures[1]).values() for w in ws}
    pids = client.run(os.getpid, workers=list(holders))

    def kill(info):
        if info.iteration == 2:
            for pid in pids.values():
                os.kill(pid, signal.SIGKILL)

    with pytest.raises(DaskDataLostError, match=r"cannot be recomputed \(they were scattered"):
        minimize(
            objective,
            np.zeros(objective.n_params),
            solver="lbfgs",
            tol=1e-10,
            max_iter=500,
            callback=kill,
        )
    client.wait_for_workers(2)


def test_the_driver_holds_sums_never_rows(client):
    X = da.random.default_rng(2).standard_normal((400_000, 10), chunks=(50_000, 10))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)  # 32 MB of rows, made on the workers
    dataset = DaskDataset(X, y)
    tracemalloc.start()
    try:
        source = dataset.source(classes=dataset.scan().classes)
        objective = Objective(SoftmaxLoss(3), source, alpha=1e-2, fit_intercept=True)
        minimize(objective, np.zeros(objective.n_params), solver="lbfgs", tol=1e-10, max_iter=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"the driver's peak was {peak} bytes; 32 MB of rows would show"


# --------------------------------------------------------------------------------------------
# The estimators on Dask input: the dataset path, lazy predictions.
# --------------------------------------------------------------------------------------------


def assert_same_fit(mine, theirs):
    assert mine.objective_ == pytest.approx(theirs.objective_, rel=1e-10)
    assert_allclose(mine.coef_, theirs.coef_, rtol=1e-8, atol=1e-8)
    # The intercepts are pinned down less tightly by the certified gap (see the solvers'
    # test above): 1e-7.
    assert_allclose(mine.intercept_, theirs.intercept_, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
@pytest.mark.parametrize("kind", ["hard", "soft", "weighted"])
def test_fit_on_dask_arrays_equals_the_in_memory_fit(client, solver, kind):
    X, y, weight = problem(soft=kind == "soft")
    weight = weight if kind == "weighted" else None
    settings = {"alpha": 1e-3, "solver": solver, "tol": 1e-10}
    expected = SoftmaxRegression(**settings).fit(X, y, sample_weight=weight)
    model = SoftmaxRegression(**settings).fit(*as_dask(X, y), sample_weight=as_dask(weight)[0])
    assert_same_fit(model, expected)
    assert model.n_features_in_ == 5
    assert_array_equal(model.classes_, expected.classes_)


def test_standardized_and_class_weighted_fit_on_dask_equals_the_in_memory_fit(client):
    X, y, weight = problem()
    settings = {"alpha": 1e-3, "tol": 1e-10, "standardize": True, "class_weight": "balanced"}
    expected = SoftmaxRegression(**settings).fit(X, y, sample_weight=weight)
    model = SoftmaxRegression(**settings).fit(*as_dask(X, y), sample_weight=as_dask(weight)[0])
    assert_same_fit(model, expected)


def test_lazy_predictions_equal_the_in_memory_ones(client):
    X, y, _ = problem()
    labels = np.array(["ant", "bee", "cat"], dtype=object)[y]
    model = SoftmaxRegression(alpha=1e-3).fit(X, labels)
    (dX,) = as_dask(X)
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        lazy = getattr(model, method)(dX)
        assert isinstance(lazy, da.Array), method
        assert lazy.shape == getattr(model, method)(X).shape
        assert_allclose(lazy.compute(), getattr(model, method)(X), rtol=1e-13) if method != (
            "predict"
        ) else assert_array_equal(lazy.compute(), model.predict(X))
    assert model.score(dX, as_dask(labels)[0]) == model.score(X, labels)
    binary = SoftmaxRegression(alpha=1e-3).fit(X, y == 0)
    assert_allclose(binary.decision_function(dX).compute(), binary.decision_function(X))
    bad = X.copy()
    bad[1500, 0] = np.inf
    with pytest.raises(ValueError, match=r"`X` chunk 2 \(rows 1400 to 2099\) must hold finite"):
        model.predict(as_dask(bad)[0]).compute()


def test_score_on_dask_input_is_computed_on_the_workers(client, monkeypatch):
    X, y, weight = problem()
    model = SoftmaxRegression(alpha=1e-3).fit(X, y)
    target = X @ np.arange(1.0, 6.0) + np.sin(np.arange(3000))
    regression = LinearRegression(alpha=1e-3).fit(X, target)

    def no_rows_to_the_driver(self):
        raise AssertionError("score read chunks on the driver")

    monkeypatch.setattr(DaskDataset, "batches", no_rows_to_the_driver)
    dX, dy, dw, dt = as_dask(X, y, weight, target)
    assert model.score(dX, dy, sample_weight=dw) == pytest.approx(
        model.score(X, y, sample_weight=weight), rel=1e-14
    )
    assert regression.score(dX, dt, sample_weight=dw) == pytest.approx(
        regression.score(X, target, sample_weight=weight), rel=1e-12
    )
    unseen = y.copy()
    unseen[2500] = 7
    with pytest.raises(ValueError, match=r"`y` contains labels \[7\] the model was not trained"):
        model.score(dX, as_dask(unseen)[0])


def test_fit_on_a_dask_dataframe_read_from_parquet_equals_the_in_memory_fit(client, tmp_path):
    pandas = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X, y, weight = problem()
    frame = pandas.DataFrame(X, columns=[f"f{j}" for j in range(5)])
    frame["label"], frame["w"] = y, weight
    for part in range(3):
        frame.iloc[part * 1000 : (part + 1) * 1000].to_parquet(tmp_path / f"part{part}.parquet")
    data = dd.read_parquet(str(tmp_path / "*.parquet"))
    model = SoftmaxRegression(alpha=1e-3, tol=1e-10).fit(data, "label", sample_weight="w")
    expected = SoftmaxRegression(alpha=1e-3, tol=1e-10).fit(
        frame.iloc[:, :5], y, sample_weight=weight
    )
    assert_same_fit(model, expected)
    assert model.feature_names_in_.tolist() == ["f0", "f1", "f2", "f3", "f4"]
    assert_allclose(
        model.predict_proba(data[["f0", "f1", "f2", "f3", "f4"]]).compute(),
        expected.predict_proba(frame.iloc[:, :5]),
        rtol=1e-7,
    )
    with pytest.raises(ValueError, match=r"The DataFrame has no columns \['nope'\]"):
        SoftmaxRegression().fit(data, "nope")


@pytest.mark.parametrize("format", ["parquet", "csv"])
def test_open_dataset_with_the_dask_engine_fits_as_in_memory(client, tmp_path, format):
    pandas = pytest.importorskip("pandas")
    X, y, weight = problem()
    frame = pandas.DataFrame(X, columns=[f"f{j}" for j in range(5)])
    frame["label"], frame["w"], frame["id"] = y, weight, np.arange(3000)
    for part in range(3):
        rows = frame.iloc[part * 1000 : (part + 1) * 1000]
        path = tmp_path / f"part{part}.{format}"
        rows.to_parquet(path) if format == "parquet" else rows.to_csv(path, index=False)
    data = open_dataset(
        str(tmp_path / f"*.{format}"), "label", sample_weight="w", exclude=["id"], engine="dask"
    )
    assert isinstance(data, DaskDataset)
    model = SoftmaxRegression(alpha=1e-3, tol=1e-10).fit(data)
    expected = SoftmaxRegression(alpha=1e-3, tol=1e-10).fit(X, y, sample_weight=weight)
    # CSV holds the numbers to 17 significant digits: they round-trip exactly.
    assert_same_fit(model, expected)
    with pytest.raises(ValueError, match=r'`engine` must be None or "dask"; got \'spark\''):
        open_dataset(str(tmp_path / f"*.{format}"), "label", engine="spark")


def test_linear_regression_on_dask_arrays_equals_the_in_memory_fit(client):
    X, _, weight = problem()
    target = X @ np.arange(1.0, 6.0) + 0.1 * np.sin(np.arange(3000))
    settings = {"alpha": 1e-3, "tol": 1e-12}
    expected = LinearRegression(**settings).fit(X, target, sample_weight=weight)
    dX, dy, dw = as_dask(X, target, weight)
    model = LinearRegression(**settings).fit(dX, dy, sample_weight=dw)
    assert_same_fit(model, expected)
    assert_allclose(model.predict(dX).compute(), expected.predict(X), rtol=1e-8)
    assert model.score(dX, dy) == pytest.approx(expected.score(X, target), rel=1e-12)


# --------------------------------------------------------------------------------------------
# The command line.
# --------------------------------------------------------------------------------------------


def parquet_parts(pandas, folder):
    """problem() as three Parquet files in folder: the frame, y, the glob and a model path."""
    X, y, _ = problem()
    frame = pandas.DataFrame(X, columns=[f"f{j}" for j in range(5)])
    frame["y"] = y
    for part in range(3):
        frame.iloc[part * 1000 : (part + 1) * 1000].to_parquet(folder / f"part{part}.parquet")
    return frame, y, str(folder / "*.parquet"), str(folder / "model.softreg")


def test_cli_fit_on_a_dask_cluster_equals_the_in_memory_fit(client, tmp_path):
    pandas = pytest.importorskip("pandas")
    from click.testing import CliRunner

    from softreg import load
    from softreg.cli import main

    frame, y, data, model = parquet_parts(pandas, tmp_path)
    address = client.scheduler.address
    options = ["--alpha", "1e-3", "--tol", "1e-10", "-q"]
    result = CliRunner().invoke(
        main, ["fit", data, "--target", "y", "-o", model, "--dask-scheduler", address, *options]
    )
    assert result.exit_code == 0, result.output
    expected = SoftmaxRegression(alpha=1e-3, tol=1e-10).fit(frame.iloc[:, :5], y)
    assert_same_fit(load(model), expected)
    both = ["--dask-scheduler", address, "--dask-workers", "2"]
    result = CliRunner().invoke(main, ["fit", data, "--target", "y", "-o", model, *both])
    assert result.exit_code == 2
    assert "--dask-scheduler and --dask-workers exclude each other." in result.output


def test_cli_checkpoint_on_a_dask_cluster_resumes_to_the_in_memory_fit(client, tmp_path):
    pandas = pytest.importorskip("pandas")
    from click.testing import CliRunner

    from softreg import load
    from softreg.cli import main

    frame, y, data, model = parquet_parts(pandas, tmp_path)
    checkpoint = tmp_path / "fit.ckpt"
    args = ["fit", data, "--target", "y", "-o", model, "--checkpoint", str(checkpoint)]
    args += ["--dask-scheduler", client.scheduler.address, "--alpha", "1e-3", "--tol", "1e-10"]
    runner = CliRunner()
    result = runner.invoke(main, [*args, "--max-iter", "2"])
    assert result.exit_code == 3, result.output
    assert checkpoint.exists()  # not converged: kept, so that a rerun continues
    result = runner.invoke(main, [*args, "--max-iter", "100", "-v"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("iteration     3  ")  # iterations 0-2 were saved
    assert not checkpoint.exists()
    expected = SoftmaxRegression(alpha=1e-3, tol=1e-10).fit(frame.iloc[:, :5], y)
    assert_same_fit(load(model), expected)
    # The fingerprint names the files the pattern matched: a changed file refuses the resume.
    runner.invoke(main, [*args, "--max-iter", "2"])
    os.utime(tmp_path / "part1.parquet", ns=(1, 1))
    result = runner.invoke(main, [*args, "--max-iter", "100"])
    assert result.exit_code == 1
    assert "data_files is " in result.output and "part1.parquet" in result.output
