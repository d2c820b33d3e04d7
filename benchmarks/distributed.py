"""Fitting on Dask: per-pass overhead, time to a 1e-6 gap with 1 and 2 workers, two peers.

``python -m benchmarks.distributed`` (not part of ``make test``) writes one Parquet file of a
synthetic 10-class problem and then, each reading that file:

1. the per-pass overhead: one loss+gradient pass over the rows persisted on a
   ``LocalCluster`` (1 and 2 worker processes of one thread) against the same pass in memory,
   and a pass over a 1000-row dataset in as many chunks (the fixed cost of a pass);
2. the time to a 1e-6 relative gap (``R - R* ≤ 1e-6 R*``; ``R*`` from a tight in-memory
   fit), end to end: read the file, scan, persist, fit;
3. dask-ml's ``LogisticRegression`` on the same cluster (binary only: its accuracy on the
   10-class problem is recorded next to softreg's);
4. Spark MLlib's ``LogisticRegression(family="multinomial")`` on ``local[2]`` with the same
   objective (``regParam = alpha``, no elastic net, no standardisation), fitted with
   ``maxIter`` doubling until it reaches the gap; each fit is timed end to end from the file.

dask-ml and pyspark (with a Java runtime) come with the ``bench`` extra; a peer that cannot
be imported or started is skipped with a message.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from softreg import SoftmaxRegression
from softreg._objective import Objective, SoftmaxLoss, objective_value
from softreg._sources import ArraySource

GAP = 1e-6


def make_problem(n_samples, n_features, n_classes, seed=0):
    """Features with correlated columns and labels drawn from a softmax model."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    X[:, 1:] += 0.5 * X[:, :-1]
    coef = rng.standard_normal((n_classes, n_features)) / np.sqrt(n_features)
    logits = 2 * X @ coef.T
    y = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    return X, y


def write_parquet(path, X, y, row_groups):
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {f"f{j}": X[:, j] for j in range(X.shape[1])}
    columns["label"] = y
    pq.write_table(pa.table(columns), path, row_group_size=-(-len(y) // row_groups))


def as_frame(X):
    import pandas

    return pandas.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])


def median_time(function, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load():
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def dask_dataset(path):
    import dask.dataframe as dd

    from softreg._dask import DaskDataset

    return DaskDataset.from_dataframe(dd.read_parquet(path, split_row_groups=True), "label")


def pass_times(path, X, y, alpha, repeat):
    """Median seconds of one loss+gradient pass: on the cluster, and over 1000 rows there."""
    import dask.array as da

    from softreg._dask import DaskDataset

    dataset = dask_dataset(path)
    source = dataset.source(classes=dataset.scan().classes)
    n_classes = len(np.unique(y))
    objective = Objective(SoftmaxLoss(n_classes), source, alpha=alpha, fit_intercept=True)
    theta = np.zeros(objective.n_params)
    objective.loss_gradient(theta)  # warm-up: workers import softreg, compile the kernels
    full = median_time(lambda: objective.loss_gradient(theta), repeat)
    chunks = dataset.X.numblocks[0]
    rows = -(-1000 // chunks)
    tiny = DaskDataset(
        da.from_array(X[:1000], chunks=(rows, X.shape[1])), da.from_array(y[:1000], chunks=rows)
    )
    small = Objective(
        SoftmaxLoss(n_classes),
        tiny.source(classes=np.arange(n_classes)),
        alpha=alpha,
        fit_intercept=True,
    )
    small.loss_gradient(theta)
    tiny_pass = median_time(lambda: small.loss_gradient(theta), repeat)
    from distributed import get_client

    client = get_client()
    round_trip = median_time(lambda: client.submit(int, 1, pure=False).result(), repeat)
    return full, tiny_pass, round_trip, chunks


def time_to_gap(path, alpha, best):
    """Seconds from the Parquet file to a fit certified within GAP (and its true gap).

    A first, untimed fit warms the workers up (imports, compiled kernels loaded), as Spark's
    JVM is warmed up by a first fit there.
    """
    SoftmaxRegression(alpha=alpha, max_iter=2).fit(dask_dataset(path))
    start = time.perf_counter()
    model = SoftmaxRegression(alpha=alpha, tol=GAP).fit(dask_dataset(path))
    elapsed = time.perf_counter() - start
    return elapsed, model


def run_dask_ml(X, y, alpha, chunks):
    """dask-ml's LogisticRegression on the current cluster: seconds and training accuracy."""
    try:
        import dask.array as da
        from dask_ml.linear_model import LogisticRegression
    except ImportError as exc:
        print(f"dask-ml: skipped ({exc}); `pip install dask-ml` (the bench extra)")
        return None
    dX = da.from_array(X, chunks=(chunks, X.shape[1])).persist()
    dy = da.from_array(y, chunks=chunks).persist()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its overflow in exp, its convergence
        model = LogisticRegression(C=1 / (alpha * len(y)), solver="lbfgs", max_iter=100)
        model.fit(dX, dy)
        predicted = np.asarray(model.predict(dX).compute())
    elapsed = time.perf_counter() - start
    return elapsed, float(np.mean(predicted == y)), np.unique(predicted).tolist()


def java_version():
    java = shutil.which("java")
    if java is None:
        return None
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    return (result.stderr or result.stdout).splitlines()[0]


def run_spark(path, X, y, alpha, best, max_iters):
    """Spark MLlib's multinomial fit from the Parquet file, maxIter doubling to the gap."""
    try:
        from pyspark.ml.classification import LogisticRegression
        from pyspark.ml.feature import VectorAssembler
        from pyspark.sql import SparkSession
    except ImportError as exc:
        print(f"Spark: skipped ({exc}); `pip install pyspark` (the bench extra)")
        return None
    version = java_version()
    if version is None:
        print("Spark: skipped (no `java` on PATH; apt-get install openjdk-17-jre-headless)")
        return None
    print(f"Spark: {version}")
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("softreg-benchmark")
        .config("spark.driver.memory", "2g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    names = [f"f{j}" for j in range(X.shape[1])]
    rows = []
    try:
        for max_iter in (1, *max_iters):  # the first fit warms the JVM up, untimed
            start = time.perf_counter()
            frame = VectorAssembler(inputCols=names, outputCol="features").transform(
                spark.read.parquet(path)
            )
            model = LogisticRegression(
                family="multinomial",
                regParam=alpha,
                elasticNetParam=0.0,
                standardization=False,
                maxIter=max_iter,
                tol=1e-14,
                labelCol="label",
            ).fit(frame)
            elapsed = time.perf_counter() - start
            coef = model.coefficientMatrix.toArray()
            intercept = model.interceptVector.toArray()
            gap = (objective_value(X, y, coef, intercept, alpha) - best) / best
            if max_iter == 1:
                continue
            rows.append((max_iter, elapsed, gap))
            print(f"  Spark maxIter={max_iter:4d}: {elapsed:7.2f} s, relative gap {gap:.2e}")
            if gap <= GAP:
                break
    finally:
        spark.stop()
    return rows


@contextlib.contextmanager
def cluster(n_workers):
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as local,
        Client(local) as client,
    ):
        yield client


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--chunks", type=int, default=8, help="row groups = Dask chunks")
    parser.add_argument("--repeat", type=int, default=15, help="passes timed (median)")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-dask-ml", action="store_true")
    args = parser.parse_args(argv)

    X, y = make_problem(args.rows, args.features, args.classes)
    folder = tempfile.mkdtemp(prefix="softreg-distributed-")
    path = os.path.join(folder, "data.parquet")
    write_parquet(path, X, y, args.chunks)
    print(
        f"{args.rows} x {args.features}, {args.classes} classes, alpha {args.alpha:g}, "
        f"{args.chunks} row groups, {os.path.getsize(path) / 2**20:.1f} MiB Parquet; {load()}"
    )
    try:
        reference = SoftmaxRegression(alpha=args.alpha, tol=1e-10, solver="newton-cg").fit(X, y)
        best = reference.objective_
        start = time.perf_counter()
        in_memory = SoftmaxRegression(alpha=args.alpha, tol=GAP).fit(X, y)
        memory_fit = time.perf_counter() - start
        objective = Objective(
            SoftmaxLoss(args.classes), ArraySource(X, y), alpha=args.alpha, fit_intercept=True
        )
        theta = np.zeros(objective.n_params)
        objective.loss_gradient(theta)
        # One BLAS thread, as each Dask worker has: the pass in memory on the same footing.
        with threadpool_limits(1):
            memory_pass = median_time(lambda: objective.loss_gradient(theta), args.repeat)
        print(f"R* = {best:.12g}; accuracy {reference.score(X, y):.4f}")
        print(
            f"in memory: pass {memory_pass * 1e3:.1f} ms (one thread); fit to {GAP:g} "
            f"{memory_fit:.2f} s ({in_memory.solver_}, {in_memory.n_iter_} iterations)"
        )
        for n_workers in (1, 2):
            with cluster(n_workers) as client:
                full, tiny, round_trip, chunks = pass_times(path, X, y, args.alpha, args.repeat)
                elapsed, model = time_to_gap(path, args.alpha, best)
                gap = (model.objective_ - best) / best
                print(
                    f"Dask, {n_workers} worker(s), {chunks} chunks: pass {full * 1e3:.1f} ms "
                    f"(overhead over the in-memory pass {(full - memory_pass) * 1e3:+.1f} ms); "
                    f"1000-row pass {tiny * 1e3:.1f} ms (one task's round trip "
                    f"{round_trip * 1e3:.1f} ms); fit to {GAP:g} from the file "
                    f"{elapsed:.2f} s ({model.solver_}, {model.n_iter_} iterations, true gap "
                    f"{gap:.1e}); {load()}"
                )
                if n_workers == 2 and not args.skip_dask_ml:
                    result = run_dask_ml(X, y, args.alpha, -(-args.rows // args.chunks))
                    if result is not None:
                        seconds, accuracy, predicted = result
                        print(
                            f"dask-ml LogisticRegression: {seconds:.2f} s, training accuracy "
                            f"{accuracy:.4f} on {args.classes} classes (softreg "
                            f"{np.mean(model.predict(as_frame(X)) == y):.4f}); it predicts "
                            f"only {predicted}"
                        )
                client.close()
        if not args.skip_spark:
            rows = run_spark(path, X, y, args.alpha, best, [5, 10, 20, 40, 80, 160, 320])
            if rows:
                print(f"Spark MLlib local[2]: {load()}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
