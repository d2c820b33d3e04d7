"""Human-readable views of an evaluation: a text table and a self-contained HTML report.

Both render the dict that :func:`softreg._metrics.classification_metrics` returns, so every
number a person reads is the number ``softreg evaluate --json`` prints. The HTML report embeds
its figures as base64 PNG (drawn with matplotlib's Agg renderer through
:class:`matplotlib.figure.Figure`, without pyplot's global state), inlines its CSS, loads
nothing and links nowhere: it opens offline and can be mailed as one file. Each number in its
tables carries its JSON path and exact value, e.g.
``<td data-metric="per_class.3.f1" data-value="0.9787234042553191">0.9787</td>``, and the whole
dict is embedded as ``<script type="application/json" id="softreg-metrics">``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math

import numpy as np

from softreg._data_io import import_optional

__all__ = [
    "format_metrics",
    "format_model",
    "format_number",
    "format_probability",
    "json_ready",
    "render_html",
]

# Annotate confusion-matrix cells with counts up to this many classes; beyond, colour only.
_MAX_ANNOTATED_CLASSES = 20
# Feature names shown in full by `inspect`; longer lists are cut.
_MAX_FEATURES_SHOWN = 8


def format_number(value):
    """Format a metric for people: 4 decimals in [1e-3, 1e5), else 3 significant in e-notation.

    Examples
    --------
    >>> [format_number(x) for x in (0.973333, 2.5e-7, float("inf"), 0)]
    ['0.9733', '2.500e-07', 'inf', '0.0000']
    """
    if value is None:
        return "-"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4f}"
    return f"{value:.3e}"


def format_probability(log_proba):
    """Format ``exp(log_proba)`` for people, even where it underflows a float.

    Examples
    --------
    >>> format_probability(math.log(0.25)), format_probability(-1611.809565095832)
    ('0.2500', '1.0e-700')
    """
    if log_proba >= math.log(1e-3):
        return f"{math.exp(log_proba):.4f}"
    if log_proba == -math.inf:
        return "0"
    # p = m · 10^e with 1 <= m < 10, from log10 p = log p / ln 10, so no underflow.
    log10 = log_proba / math.log(10)
    exponent = math.floor(log10)
    mantissa = 10 ** (log10 - exponent)
    if round(mantissa, 1) >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.1f}e{exponent:+03d}"


def json_ready(value):
    """Replace non-finite floats by the strings "inf", "-inf", "nan" so that strict JSON holds.

    Examples
    --------
    >>> json_ready({"perplexity": float("inf"), "bins": [0.5, None]})
    {'perplexity': 'inf', 'bins': [0.5, None]}
    """
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _table(header, rows, align=None):
    """A plain-text table; columns right-aligned except those marked "<" in ``align``."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    align = align or ">" * len(header)
    lines = [
        "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths, strict=True)).rstrip()
        for row in cells
    ]
    return "\n".join(lines)


def format_metrics(metrics, *, model_path=None, data_path=None):
    """The evaluation as text tables, for a terminal.

    Parameters
    ----------
    metrics : dict
        From :func:`softreg._metrics.classification_metrics`.
    model_path, data_path : str, optional
        Named in the title line.

    Returns
    -------
    str
        Summary, per-class table, confusion matrix and the likeliest mislabelled rows.
    """
    lines = []
    if model_path or data_path:
        lines.append(f"Evaluation of {model_path} on {data_path}")
    lines.append(f"{metrics['n_samples']} samples, {metrics['n_classes']} classes")
    lines.append("")
    n_bins = len(metrics["calibration_bins"])
    summary = [
        ("accuracy", format_number(metrics["accuracy"])),
        (
            "log-loss",
            f"{format_number(metrics['log_loss_nats'])} nats = "
            f"{format_number(metrics['log_loss_bits'])} bits",
        ),
        ("perplexity", format_number(metrics["perplexity"])),
        (
            "mean predictive entropy",
            f"{format_number(metrics['mean_predictive_entropy_nats'])} nats = "
            f"{format_number(metrics['mean_predictive_entropy_bits'])} bits",
        ),
        (
            "expected calibration error",
            f"{format_number(metrics['expected_calibration_error'])} "
            f"(top label, {n_bins} equal-width bins)",
        ),
    ]
    lines.append(_table(["metric", "value"], summary, align="<<"))
    lines += ["", "Per class"]
    lines.append(
        _table(
            ["class", "precision", "recall", "f1", "support"],
            [
                [
                    row["class"],
                    format_number(row["precision"]),
                    format_number(row["recall"]),
                    format_number(row["f1"]),
                    _count(row["support"]),
                ]
                for row in metrics["per_class"]
            ],
        )
    )
    lines += ["", "Confusion matrix (rows: true class, columns: predicted class)"]
    lines.append(
        _table(
            ["", *metrics["classes"]],
            [
                [label, *(_count(v) for v in row)]
                for label, row in zip(metrics["classes"], metrics["confusion_matrix"], strict=True)
            ],
        )
    )
    lines += ["", "Likeliest mislabelled rows (highest surprisal -log2 p of the given label)"]
    lines.append(
        _table(
            ["row", "label", "predicted", "p(label)", "surprisal (bits)"],
            [
                [
                    r["row"],
                    r["label"],
                    r["predicted"],
                    format_probability(r["log_proba"]),
                    f"{r['surprisal_bits']:.2f}",
                ]
                for r in metrics["highest_surprisal"]
            ],
        )
    )
    return "\n".join(lines) + "\n"


def _count(value):
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def format_model(header, coef=None):
    """What a model file holds, as text, for ``softreg inspect``.

    Parameters
    ----------
    header : dict
        The model file header (see :func:`softreg._model_io.read_model_file`).
    coef : ndarray of shape (n_classes, n_features), optional
        The model's ``coef_``: a sparse model (``l1_ratio > 0`` or cross-validated) then
        shows its non-zero coefficients per class and the features it keeps.

    Returns
    -------
    str
    """
    training = header["training"]
    names = header["feature_names"]
    if names is None:
        features = f"{header['n_features']} (unnamed: matched by position)"
    else:
        shown = ", ".join(names[:_MAX_FEATURES_SHOWN])
        more = f", ... ({len(names)} in all)" if len(names) > _MAX_FEATURES_SHOWN else ""
        features = f"{len(names)}: {shown}{more}"
    rows = [
        ("format", f"{header['format']} version {header['format_version']}"),
        ("written by", f"softreg {header['softreg_version']}"),
        ("estimator", header["estimator"]),
    ]
    if header["classes"] is not None:
        classes = header["classes"]
        rows.append(("classes", f"{len(classes)}: {', '.join(map(str, classes))}"))
    rows.append(("features", features))
    rows.append(("hyper-parameters", ""))
    # A model file never holds a callback: leave the always-None entry out.
    params = {name: value for name, value in header["params"].items() if name != "callback"}
    rows += [(f"  {name}", repr(value)) for name, value in params.items()]
    rows += [
        ("training", ""),
        ("  solver", training["solver"]),
        ("  iterations", training["n_iter"]),
        ("  converged", "yes" if training["converged"] else "no"),
        ("  objective", repr(training["objective"])),
        ("  optimality gap bound", repr(training["optimality_gap_bound"])),
    ]
    if "n_samples_seen" in training:  # absent in files written before it was recorded
        rows.append(("  rows seen", training["n_samples_seen"]))
    rows += [(f"  {key}", value) for key, value in header["metadata"].items()]
    from softreg import _report_sparse as sparse  # it builds on this module's helpers

    if coef is not None and sparse.shows_sparsity(header):
        rows += sparse.sparsity_rows(header, coef)
    if "cross_validation" in header:
        rows += sparse.cross_validation_rows(header["cross_validation"])
    rows.append(("arrays", ""))
    rows += [
        (f"  {name}", f"{info['dtype']} {tuple(info['shape'])}")
        for name, info in header["arrays"].items()
    ]
    return _table(["", ""], rows, align="<<").split("\n", 1)[1] + "\n"


# ------------------------------------------------------------------------------------------
# HTML


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 60rem; padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
p.meta { color: #57606a; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { padding: 0.2rem 0.6rem; border-bottom: 1px solid #eaeef2; text-align: right; }
th { background: #f6f8fa; }
td.label, th.label { text-align: left; }
table.confusion td { min-width: 2rem; }
table.confusion td.diagonal { font-weight: 600; }
figure { margin: 0.5rem 0 1.5rem; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #57606a; font-size: 0.9rem; }
code { background: #f6f8fa; padding: 0 0.2rem; }
"""


def _e(value):
    return html.escape(str(value), quote=True)


def _cell(path, value, text=None):
    """A table cell carrying its JSON path and exact value (repr round-trips floats)."""
    exact = repr(value) if isinstance(value, float) else str(value)
    shown = format_number(value) if text is None else text
    return f'<td data-metric="{_e(path)}" data-value="{_e(exact)}">{_e(shown)}</td>'


def _png(figure):
    buffer = io.BytesIO()
    # No "Software" text chunk: it would carry matplotlib's web address into the file.
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure_html(figure_id, figure, caption):
    return (
        f'<figure id="{figure_id}"><img alt="{_e(caption)}" '
        f'src="data:image/png;base64,{_png(figure)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _new_figure(width=7.0, height=3.6):
    figure_module = import_optional("matplotlib.figure", "report", "the HTML report")
    figure = figure_module.Figure(figsize=(width, height), layout="constrained")
    return figure


def _training_figure(history):
    figure = _new_figure()
    left, right = figure.subplots(1, 2)
    iterations = np.arange(len(history["objective"]))
    left.plot(iterations, history["objective"], marker=".", color="C0")
    left.set(xlabel="iteration", ylabel="objective R(W, b)", title="Objective")
    gap = np.asarray(history["gap_bound"], dtype=float)
    finite = np.isfinite(gap) & (gap > 0)
    if finite.any():
        right.semilogy(iterations[finite], gap[finite], marker=".", color="C1", label="gap bound")
    gradient = np.asarray(history["gradient_norm"], dtype=float)
    positive = gradient > 0
    if positive.any():
        right.semilogy(
            iterations[positive], gradient[positive], color="C2", ls="--", label="gradient norm"
        )
    if not finite.any():
        right.text(
            0.5, 0.5, "no finite gap bound\n(alpha = 0)", ha="center", transform=right.transAxes
        )
    right.set(xlabel="iteration", ylabel="bound, norm", title="Certified optimality-gap bound")
    right.legend(loc="upper right")
    return figure


def _reliability_figure(metrics):
    figure = _new_figure(5.0, 5.0)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    bins = metrics["calibration_bins"]
    width = bins[0]["upper"] - bins[0]["lower"]
    filled = [b for b in bins if b["weight"]]
    centres = [(b["lower"] + b["upper"]) / 2 for b in filled]
    top.plot([0, 1], [0, 1], color="grey", ls=":", label="perfect calibration")
    top.bar(
        centres,
        [b["accuracy"] for b in filled],
        width=width * 0.9,
        color="C0",
        alpha=0.8,
        label="accuracy",
    )
    top.plot(
        [b["mean_confidence"] for b in filled],
        [b["accuracy"] for b in filled],
        "o",
        color="C3",
        ms=4,
        label="mean confidence",
    )
    top.set(
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"Reliability (ECE {format_number(metrics['expected_calibration_error'])})",
    )
    top.legend(loc="upper left")
    bottom.bar(centres, [b["weight"] for b in filled], width=width * 0.9, color="C7")
    bottom.set(xlabel="confidence (top-label probability)", ylabel="samples")
    return figure


def _confusion_figure(metrics):
    size = min(3.0 + 0.4 * metrics["n_classes"], 9.0)
    figure = _new_figure(size + 1.0, size)
    axes = figure.subplots()
    matrix = np.asarray(metrics["confusion_matrix"], dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    recall = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    image = axes.imshow(recall, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, label="fraction of the true class")
    # An escaped "$" keeps labels such as "$5" from being read as mathtext.
    labels = [str(c).replace("$", r"\$") for c in metrics["classes"]]
    ticks = np.arange(len(labels))
    axes.set_xticks(ticks, labels, rotation=90 if len(labels) > 10 else 0)
    axes.set_yticks(ticks, labels)
    axes.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix")
    if len(labels) <= _MAX_ANNOTATED_CLASSES:
        for i, j in np.ndindex(matrix.shape):
            if matrix[i, j]:
                axes.text(
                    j,
                    i,
                    f"{matrix[i, j]:.4g}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if recall[i, j] > 0.6 else "black",
                )
    return figure


def _surprisal_figure(surprisal, metrics):
    figure = _new_figure()
    axes = figure.subplots()
    if isinstance(surprisal, tuple):  # (edges, counts), as streamed evaluation keeps it
        edges, counts = surprisal
        centres = (edges[:-1] + edges[1:]) / 2
        n_bars = min(50, max(10, int(counts.sum()) // 10))
        axes.hist(centres, bins=n_bars, weights=counts, color="C0", log=True)
    else:
        finite = surprisal[np.isfinite(surprisal)]
        axes.hist(finite, bins=min(50, max(10, finite.size // 10)), color="C0", log=True)
    axes.axvline(
        metrics["log_loss_bits"],
        color="C3",
        ls="--",
        label=f"mean = log-loss ({format_number(metrics['log_loss_bits'])} bits)",
    )
    axes.axvline(
        math.log2(metrics["n_classes"]),
        color="grey",
        ls=":",
        label=f"uniform guess (log2 {metrics['n_classes']} bits)",
    )
    axes.set(
        xlabel="surprisal -log2 p(true class) [bits]",
        ylabel="samples",
        title="Per-sample surprisal",
    )
    axes.legend(loc="upper right")
    return figure


def _summary_html(metrics):
    rows = [
        ("accuracy", "accuracy"),
        ("log-loss (nats)", "log_loss_nats"),
        ("log-loss (bits)", "log_loss_bits"),
        ("perplexity", "perplexity"),
        ("mean predictive entropy (nats)", "mean_predictive_entropy_nats"),
        ("mean predictive entropy (bits)", "mean_predictive_entropy_bits"),
        ("expected calibration error", "expected_calibration_error"),
        ("samples", "n_samples"),
        ("classes", "n_classes"),
    ]
    body = "".join(
        f'<tr><th class="label">{_e(name)}</th>'
        f"{_cell(key, metrics[key], str(metrics[key]) if isinstance(metrics[key], int) else None)}"
        "</tr>"
        for name, key in rows
    )
    return f'<table class="summary">{body}</table>'


def _per_class_html(metrics):
    head = "".join(f"<th>{h}</th>" for h in ("precision", "recall", "F1", "support"))
    body = ""
    for k, row in enumerate(metrics["per_class"]):
        cells = "".join(
            _cell(f"per_class.{k}.{key}", row[key]) for key in ("precision", "recall", "f1")
        )
        cells += _cell(f"per_class.{k}.support", row["support"], _count(row["support"]))
        body += f'<tr><td class="label">{_e(row["class"])}</td>{cells}</tr>'
    return f'<table class="per-class"><tr><th class="label">class</th>{head}</tr>{body}</table>'


def _confusion_html(metrics):
    classes = metrics["classes"]
    head = "".join(f"<th>{_e(c)}</th>" for c in classes)
    body = ""
    for i, row in enumerate(metrics["confusion_matrix"]):
        cells = "".join(
            _cell(f"confusion_matrix.{i}.{j}", value, _count(value)).replace(
                "<td ", '<td class="diagonal" ' if i == j else "<td ", 1
            )
            for j, value in enumerate(row)
        )
        body += f'<tr><th class="label">{_e(classes[i])}</th>{cells}</tr>'
    return (
        '<table class="confusion"><tr><th class="label">true \\ predicted</th>'
        f"{head}</tr>{body}</table>"
    )


def _calibration_html(metrics):
    body = ""
    for b, row in enumerate(metrics["calibration_bins"]):
        if not row["weight"]:
            continue
        body += (
            f'<tr><td class="label">({row["lower"]:.3f}, {row["upper"]:.3f}]</td>'
            f"{_cell(f'calibration_bins.{b}.mean_confidence', row['mean_confidence'])}"
            f"{_cell(f'calibration_bins.{b}.accuracy', row['accuracy'])}"
            f"{_cell(f'calibration_bins.{b}.weight', row['weight'], _count(row['weight']))}</tr>"
        )
    return (
        '<table class="calibration"><tr><th class="label">confidence bin</th>'
        f"<th>mean confidence</th><th>accuracy</th><th>samples</th></tr>{body}</table>"
    )


def _surprisal_html(metrics):
    body = ""
    for r, row in enumerate(metrics["highest_surprisal"]):
        path = f"highest_surprisal.{r}"
        probability = format_probability(row["log_proba"])
        bits = f"{row['surprisal_bits']:.2f}"
        body += (
            f"<tr>{_cell(f'{path}.row', row['row'], str(row['row']))}"
            f'<td class="label">{_e(row["label"])}</td>'
            f'<td class="label">{_e(row["predicted"])}</td>'
            f"{_cell(f'{path}.log_proba', row['log_proba'], probability)}"
            f"{_cell(f'{path}.surprisal_bits', row['surprisal_bits'], bits)}</tr>"
        )
    return (
        '<table class="surprisal"><tr><th>row</th><th class="label">label</th>'
        '<th class="label">predicted</th><th>p(label)</th><th>surprisal (bits)</th></tr>'
        f"{body}</table>"
    )


def _model_html(model):
    training = model["training"]
    rows = [
        ("estimator", model["estimator"]),
        (
            "written by",
            f"softreg {model['softreg_version']} (format version {model['format_version']})",
        ),
        ("features", model["n_features"]),
        *((f"{name}", repr(value)) for name, value in model["params"].items()),
        ("solver used", training["solver"]),
        ("iterations", training["n_iter"]),
        ("converged", "yes" if training["converged"] else "no"),
        ("final objective", repr(training["objective"])),
        ("optimality gap bound", repr(training["optimality_gap_bound"])),
        *model["metadata"].items(),
    ]
    body = "".join(
        f'<tr><th class="label">{_e(k)}</th><td class="label"><code>{_e(v)}</code></td></tr>'
        for k, v in rows
    )
    return f'<table class="model">{body}</table>'


def render_html(metrics, *, surprisal, history, model, model_path, data_path, coef=None):
    """The self-contained HTML evaluation report.

    Parameters
    ----------
    metrics : dict
        From :func:`softreg._metrics.classification_metrics`.
    surprisal : ndarray of shape (n_samples,), or tuple (edges, counts)
        Per-sample surprisal in bits (:func:`softreg._metrics.surprisal_bits`), or its
        histogram (:meth:`softreg._metrics.MetricsAccumulator.surprisal_histogram`).
    history : dict of str to ndarray
        The estimator's ``history_`` (``objective``, ``gradient_norm``, ``gap_bound``).
    model : dict
        The model file header (see :func:`softreg._model_io.read_model_file`).
    model_path, data_path : str
        Named in the title.
    coef : ndarray of shape (n_classes, n_features), optional
        The model's ``coef_``: a sparse model (``l1_ratio > 0`` or cross-validated) gets a
        section with its non-zero coefficients per class.

    Returns
    -------
    str
        One HTML document with four embedded PNG figures (training curves, reliability
        diagram, confusion matrix, surprisal distribution) and the tables of ``evaluate``;
        a fifth figure, the regularisation path and the cross-validated log-loss against
        alpha, when the model file has a ``cross_validation`` section.

    Raises
    ------
    MissingDependencyError
        If matplotlib is not installed.
    """
    figures = {
        "training": _figure_html(
            "figure-training",
            _training_figure(history),
            "Objective and certified optimality-gap bound per iteration of training.",
        ),
        "reliability": _figure_html(
            "figure-reliability",
            _reliability_figure(metrics),
            "Reliability diagram: accuracy against confidence in equal-width bins; "
            "bars below count the samples per bin.",
        ),
        "confusion": _figure_html(
            "figure-confusion",
            _confusion_figure(metrics),
            "Confusion matrix, coloured by the fraction of each true class.",
        ),
        "surprisal": _figure_html(
            "figure-surprisal",
            _surprisal_figure(
                surprisal if isinstance(surprisal, tuple) else np.asarray(surprisal, dtype=float),
                metrics,
            ),
            "Distribution of the per-sample surprisal -log2 p of the true class.",
        ),
    }
    from softreg import _report_sparse as sparse

    extra = ""
    if coef is not None and sparse.shows_sparsity(model):
        extra += f'<section id="sparsity"><h2>Sparsity</h2>{sparse.sparsity_html(model, coef)}'
        extra += "</section>\n"
    if "cross_validation" in model:
        extra += f'<section id="path"><h2>Regularisation path</h2>{sparse.path_html(model)}'
        extra += "</section>\n"
    # JSON escapes for <, > and & keep the data block inert inside HTML ("</script>" and all).
    data_json = (
        json.dumps(json_ready(metrics), allow_nan=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    title = f"softreg report: {model_path} on {data_path}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Evaluation report</h1>
<p class="meta">Model <code>{_e(model_path)}</code> ({_e(model["estimator"])}) on
<code>{_e(data_path)}</code>: {metrics["n_samples"]} samples, {metrics["n_classes"]} classes.</p>
<section id="summary"><h2>Summary</h2>{_summary_html(metrics)}</section>
<section id="training"><h2>Training</h2>{figures["training"]}</section>
<section id="calibration"><h2>Calibration</h2>{figures["reliability"]}
{_calibration_html(metrics)}</section>
<section id="confusion"><h2>Confusion matrix</h2>{figures["confusion"]}
{_confusion_html(metrics)}</section>
<section id="per-class"><h2>Per class</h2>{_per_class_html(metrics)}</section>
<section id="surprisal"><h2>Surprisal and likeliest mislabelled rows</h2>{figures["surprisal"]}
<p>The rows whose given label the model finds least likely (highest surprisal
−log<sub>2</sub> p of the label) are the first to check for labelling errors.</p>
{_surprisal_html(metrics)}</section>
{extra}<section id="model"><h2>Model</h2>{_model_html(model)}</section>
<script type="application/json" id="softreg-metrics">{data_json}</script>
</body>
</html>
"""
