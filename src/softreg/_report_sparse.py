"""What ``softreg inspect`` and the HTML report show of a sparse or cross-validated model.

A model with ``l1_ratio > 0`` (or chosen by ``softreg fit --cv``) gets its non-zero
coefficients per class and the features it keeps (a feature is kept when some class has a
non-zero coefficient for it; with the grouped norm that is all classes or none). A model whose
file has a ``cross_validation`` section (:func:`softreg._cv.cv_summary`,
``docs/model-format.md``) gets the grid, the chosen pair and its cross-validated log-loss, and
in the report the path: the column norms ``‖W[:, j]‖₂`` of the features against ``alpha``, and
the test log-loss (mean ± standard deviation over the folds) against ``alpha``, the chosen
``alpha`` marked.
"""

from __future__ import annotations

import numpy as np

from softreg._report import _e, _figure_html, _new_figure

__all__ = [
    "chosen_score",
    "cross_validation_rows",
    "path_html",
    "shows_sparsity",
    "sparsity",
    "sparsity_html",
    "sparsity_rows",
]


def shows_sparsity(header):
    """Whether the model is sparse by construction: ``l1_ratio > 0`` or chosen by ``--cv``."""
    ratio = header["params"].get("l1_ratio") or 0
    return "cross_validation" in header or (isinstance(ratio, float | int) and ratio > 0)


def sparsity(coef):
    """``(non-zeros per class, features kept)`` of ``coef_`` (n_classes × n_features).

    >>> sparsity(np.array([[0.0, 1.0, 0.0], [2.0, -1.0, 0.0]]))
    ([1, 2], 2)
    """
    coef = np.atleast_2d(np.asarray(coef))
    return np.count_nonzero(coef, axis=1).tolist(), int(np.any(coef != 0, axis=0).sum())


def chosen_score(section):
    """Mean and standard deviation over the folds of the test log-loss of the chosen pair."""
    ratio = section["l1_ratios"].index(section["l1_ratio"])
    column = section["alphas"][ratio].index(section["alpha"])
    scores = np.asarray(section["scores"], dtype=float)[ratio, :, column]
    return float(scores.mean()), float(scores.std())


def sparsity_rows(header, coef):
    """Rows ``(name, value)`` for ``inspect``: non-zeros per class and the features kept."""
    per_class, kept = sparsity(coef)
    classes = header["classes"] or range(len(per_class))
    counts = ", ".join(f"{label}: {n}" for label, n in zip(classes, per_class, strict=True))
    return [
        ("sparsity", ""),
        ("  non-zero per class", f"{counts} (of {header['n_features']} features)"),
        ("  features kept", f"{kept} of {header['n_features']}"),
    ]


def cross_validation_rows(section):
    """Rows ``(name, value)`` for ``inspect``: the grid, the chosen pair and its score."""
    mean, std = chosen_score(section)
    grids = np.asarray(section["alphas"], dtype=float)
    return [
        ("cross-validation", ""),
        ("  folds", section["n_folds"]),
        ("  l1_ratios", ", ".join(f"{r:g}" for r in section["l1_ratios"])),
        ("  alphas", f"{grids.shape[1]} from {grids.max():.4g} down to {grids.min():.4g}"),
        ("  chosen alpha", repr(section["alpha"])),
        ("  chosen l1_ratio", repr(section["l1_ratio"])),
        ("  CV log-loss", f"{mean:.6g} ± {std:.2g} (mean ± std over the folds)"),
    ]


def sparsity_html(header, coef):
    """The report's table of non-zero coefficients per class."""
    per_class, kept = sparsity(coef)
    classes = header["classes"] or range(len(per_class))
    body = "".join(
        f'<tr><td class="label">{_e(label)}</td>'
        f'<td data-metric="sparsity.non_zero.{k}" data-value="{n}">{n}</td></tr>'
        for k, (label, n) in enumerate(zip(classes, per_class, strict=True))
    )
    return (
        f'<p>Features kept (non-zero for some class): <span data-metric="sparsity.features_kept"'
        f' data-value="{kept}">{kept}</span> of {header["n_features"]}.</p>'
        '<table class="sparsity"><tr><th class="label">class</th><th>non-zero coefficients'
        f"</th></tr>{body}</table>"
    )


def _path_figure(section, feature_names):
    figure = _new_figure(width=8.0, height=3.6)
    left, right = figure.subplots(1, 2)
    path = section["path"]
    alphas = np.asarray(path["alphas"], dtype=float)
    norms = np.asarray(path["coef_norms"], dtype=float).reshape(len(alphas), -1)
    for index, j in enumerate(path["features"]):
        name = feature_names[j] if feature_names is not None else f"feature {j}"
        left.plot(alphas, norms[:, index], label=name if index < 10 else None)
    left.set_xscale("log")
    left.axvline(section["alpha"], color="k", ls=":", label="chosen alpha")
    left.set(
        xlabel="alpha",
        ylabel="‖W[:, j]‖₂",
        title=f"Coefficients (l1_ratio {section['l1_ratio']:g})",
    )
    left.legend(loc="upper right", fontsize="x-small")
    scores = np.asarray(section["scores"], dtype=float)
    curves = zip(section["l1_ratios"], section["alphas"], scores, strict=True)
    for ratio, grid, fold_scores in curves:
        mean, std = fold_scores.mean(axis=0), fold_scores.std(axis=0)
        (line,) = right.plot(grid, mean, marker=".", label=f"l1_ratio {ratio:g}")
        right.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    best, _ = chosen_score(section)
    right.axvline(section["alpha"], color="k", ls=":")
    right.plot([section["alpha"]], [best], marker="*", ms=12, color="k", label="chosen")
    right.set_xscale("log")
    right.set(xlabel="alpha", ylabel="test log-loss (nats)", title="Cross-validated log-loss ± std")
    right.legend(loc="upper left", fontsize="x-small")
    return figure


def path_html(header):
    """The report's path section: the figure and the chosen pair."""
    section = header["cross_validation"]
    mean, std = chosen_score(section)
    figure = _figure_html(
        "figure-path",
        _path_figure(section, header["feature_names"]),
        "Left: the norm of each feature's coefficients (all classes) along the regularisation "
        "path on all the training data. Right: test log-loss per alpha, mean ± standard "
        f"deviation over {section['n_folds']} folds; the dotted line marks the chosen alpha.",
    )
    return (
        f"{figure}<p>Chosen by {section['n_folds']}-fold cross-validation: alpha "
        f'<span data-metric="cross_validation.alpha" data-value="{section["alpha"]!r}">'
        f"{section['alpha']:.6g}</span>, l1_ratio {section['l1_ratio']:g}, log-loss "
        f"{mean:.6g} ± {std:.2g}.</p>"
    )
