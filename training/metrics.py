"""Evaluation protocols on frozen features (paper 002, sec. 4.2) and the plots and report files that show them.

Everything here is a pure function of feature arrays and labels, so the same code scores the self-supervised
encoder, the supervised baseline and the input ablations alike:
  * linear evaluation: a linear classifier on frozen features, top-1/top-5 (the common protocol);
  * retrieval: cosine k-nearest neighbour with k = 1, its precision reported as accuracy (sec. 4.4.2);
  * semi-supervised: linear evaluation fitted on 1% and 10% of the labels (class-stratified);
  * few-shot: N-way K-shot episodes with a linear SVM, mean accuracy and its 95% confidence interval.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Result keys that hold model parameters or per-sample arrays: kept in the returned dicts, left out of the report.
NOT_REPORTED = ("weight", "bias", "predictions", "scores", "classes")

# A class the classifier never saw must never win an argmax; a finite value keeps the head ONNX- and JSON-safe.
ABSENT_CLASS_BIAS = -1.0e6


def _as_features(x: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be (samples, features), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf values")
    return array


def _as_labels(y: np.ndarray, n: int, name: str) -> np.ndarray:
    labels = np.asarray(y)
    if labels.shape != (n,):
        raise ValueError(f"{name} must be ({n},) to match the features, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"{name} must be non-negative integer class indices")
    return labels.astype(np.int64)


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of samples whose true class is among the k highest scores (ties broken by class order)."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1))) if len(labels) else float("nan")


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall per class from a confusion matrix (rows = truth); NaN for classes absent from the test set."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def linear_eval(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    seed: int = 0,
    *,
    num_classes: int | None = None,
    c: float = 1.0,
    max_iter: int = 2000,
    blas_threads: int | None = 1,
) -> dict[str, Any]:
    """Linear evaluation: standardise, fit a multinomial logistic regression, score the test set.

    Returns top1, top5 (when there are more than 5 classes), per_class_accuracy, confusion, and the classifier
    as ``weight`` (num_classes, D) and ``bias`` (num_classes,) in the ORIGINAL feature space: the standardisation
    z = (x - mean) / std is folded in, W' = W / std and b' = b - W' @ mean, so ``x @ weight.T + bias`` gives the
    classifier's scores and the pair can become the model's linear head as is. Row i is class i; classes missing
    from the training labels get zero weights and ABSENT_CLASS_BIAS.
    ``blas_threads``: L-BFGS makes many small matrix products, which run several times faster on one BLAS thread
    than on contended ones (measured 0.37 s vs 3.2 s on a busy 2-core machine); None keeps the library default.
    """
    train_x = _as_features(train_x, "train_x")
    test_x = _as_features(test_x, "test_x")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x has {train_x.shape[1]} features but test_x has {test_x.shape[1]}")
    train_y = _as_labels(train_y, len(train_x), "train_y")
    test_y = _as_labels(test_y, len(test_x), "test_y")
    seen = np.unique(train_y)
    if len(seen) < 2:
        raise ValueError(f"linear evaluation needs at least two classes in train_y, got {seen.tolist()}")
    if num_classes is None:
        num_classes = int(max(train_y.max(), test_y.max() if len(test_y) else 0)) + 1

    scaler = StandardScaler().fit(train_x)
    classifier = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    with threadpool_limits(limits=blas_threads):
        classifier.fit(scaler.transform(train_x), train_y)

    coef = classifier.coef_
    intercept = classifier.intercept_
    if coef.shape[0] == 1:  # binary: sklearn keeps one row for the positive class; softmax([-a/2, a/2]) = sigmoid(a)
        coef = np.vstack([-coef / 2.0, coef / 2.0])
        intercept = np.array([-intercept[0] / 2.0, intercept[0] / 2.0])
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    folded_weight = coef / scale[None, :]
    folded_bias = intercept - folded_weight @ scaler.mean_

    weight = np.zeros((num_classes, train_x.shape[1]), dtype=np.float64)
    bias = np.full(num_classes, ABSENT_CLASS_BIAS, dtype=np.float64)
    weight[classifier.classes_] = folded_weight
    bias[classifier.classes_] = folded_bias

    scores = test_x @ weight.T + bias
    predictions = np.argmax(scores, axis=1)
    matrix = confusion_matrix(test_y, predictions, labels=np.arange(num_classes))
    result: dict[str, Any] = {
        "top1": float(np.mean(predictions == test_y)) if len(test_y) else float("nan"),
        "num_train": len(train_y),
        "num_test": len(test_y),
        "num_classes": num_classes,
        "per_class_accuracy": per_class_accuracy(matrix),
        "confusion": matrix,
        "weight": weight,
        "bias": bias,
        "predictions": predictions,
        "classes": classifier.classes_,
    }
    if num_classes > 5:
        result["top5"] = top_k_accuracy(scores, test_y, 5)
    return result


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def knn_eval(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    k: int = 1,
    *,
    chunk: int = 1024,
) -> dict[str, Any]:
    """Retrieval by cosine similarity (paper 002, sec. 4.4.2: k = 1, precision reported as accuracy).

    top1: the majority label of the k nearest training samples (ties go to the nearest) is right;
    precision: the fraction of the k retrieved samples that share the query's label.
    """
    train_x = _unit_rows(_as_features(train_x, "train_x"))
    test_x = _unit_rows(_as_features(test_x, "test_x"))
    train_y = _as_labels(train_y, len(train_x), "train_y")
    test_y = _as_labels(test_y, len(test_x), "test_y")
    if not 1 <= k <= len(train_x):
        raise ValueError(f"k must be between 1 and the {len(train_x)} training samples, got {k}")
    predictions = np.empty(len(test_x), dtype=np.int64)
    hits = 0
    for start in range(0, len(test_x), chunk):
        similarity = test_x[start : start + chunk] @ train_x.T
        nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
        neighbour_labels = train_y[nearest]
        hits += int(np.sum(neighbour_labels == test_y[start : start + chunk, None]))
        for row, labels in enumerate(neighbour_labels):
            values, counts = np.unique(labels, return_counts=True)
            best = values[counts == counts.max()]
            predictions[start + row] = next(label for label in labels if label in best)  # nearest among the tied
    return {
        "k": k,
        "top1": float(np.mean(predictions == test_y)) if len(test_y) else float("nan"),
        "precision": hits / (k * len(test_y)) if len(test_y) else float("nan"),
        "predictions": predictions,
    }


def stratified_subset(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of about ``fraction`` of each class's samples, at least one per class, sorted."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, round(fraction * len(members)))
        chosen.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(chosen))


def _fraction_key(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def semi_supervised_eval(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    fractions: Sequence[float] = (0.01, 0.1),
    seed: int = 0,
    *,
    num_classes: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Linear evaluation with only a class-stratified fraction of the training labels, keyed "1%", "10%", ...."""
    train_y = np.asarray(train_y)
    test_y = np.asarray(test_y)
    if num_classes is None:
        num_classes = int(max(train_y.max(), test_y.max() if len(test_y) else 0)) + 1
    results = {}
    for fraction in fractions:
        rng = np.random.default_rng([seed, round(fraction * 1e6)])
        subset = stratified_subset(train_y, fraction, rng)
        result = linear_eval(train_x[subset], train_y[subset], test_x, test_y, seed, num_classes=num_classes)
        result["fraction"] = float(fraction)
        result["num_labelled"] = len(subset)
        results[_fraction_key(fraction)] = result
    return results


def few_shot_eval(
    features: np.ndarray,
    labels: np.ndarray,
    ways: int = 5,
    shots: Sequence[int] = (1, 5),
    episodes: int = 200,
    seed: int = 0,
    *,
    queries: int = 15,
) -> dict[str, dict[str, float]]:
    """N-way K-shot episodes: fit a linear SVM on K labelled samples of N random classes, classify held-out queries.

    Features are L2-normalised first (scale-free, as usual for few-shot on frozen features). Each episode draws
    ``ways`` classes with at least shot+1 samples, ``shot`` supports and up to ``queries`` queries per class.
    Returns {"5-way 1-shot": {"accuracy", "ci95", "episodes", ...}, ...}; ci95 = 1.96 * std / sqrt(episodes).
    """
    features = _unit_rows(_as_features(features, "features"))
    labels = _as_labels(labels, len(features), "labels")
    rng = np.random.default_rng(seed)
    results = {}
    for shot in shots:
        classes, counts = np.unique(labels, return_counts=True)
        eligible = classes[counts >= shot + 1]
        if len(eligible) < ways:
            raise ValueError(
                f"{ways}-way {shot}-shot needs {ways} classes with at least {shot + 1} samples; "
                f"only {len(eligible)} have that many"
            )
        accuracies = np.empty(episodes)
        for episode in range(episodes):
            episode_classes = rng.choice(eligible, size=ways, replace=False)
            support, support_y, query, query_y = [], [], [], []
            for way, label in enumerate(episode_classes):
                members = rng.permutation(np.flatnonzero(labels == label))
                support.append(members[:shot])
                query.append(members[shot : shot + queries])
                support_y.append(np.full(shot, way))
                query_y.append(np.full(len(query[-1]), way))
            svm = LinearSVC(C=1.0, random_state=seed)
            svm.fit(features[np.concatenate(support)], np.concatenate(support_y))
            predicted = svm.predict(features[np.concatenate(query)])
            accuracies[episode] = np.mean(predicted == np.concatenate(query_y))
        results[f"{ways}-way {shot}-shot"] = {
            "accuracy": float(accuracies.mean()),
            "ci95": float(1.96 * accuracies.std(ddof=1) / math.sqrt(episodes)) if episodes > 1 else float("nan"),
            "episodes": episodes,
            "ways": ways,
            "shots": shot,
            "chance": 1.0 / ways,
        }
    return results


# --------------------------------------------------------------------------------------------------------- plots


def _pyplot():
    """matplotlib with the headless Agg backend (plots are files, never windows), imported only when plotting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(
    matrix: np.ndarray, label_names: Sequence[str], path: str | Path, *, title: str = "Confusion matrix"
) -> Path:
    """Row-normalised confusion matrix (rows = truth) as a PNG; the counts are printed when the matrix is small."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(label_names):
        raise ValueError(f"confusion matrix {matrix.shape} does not match {len(label_names)} label names")
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = matrix / np.maximum(totals, 1)
    n = len(label_names)
    plt = _pyplot()
    size = min(4.0 + 0.35 * n, 30.0)
    figure, axes = plt.subplots(figsize=(size, size * 0.85))
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    font = max(4, 10 - n // 10)
    axes.set_xticks(range(n), labels=list(label_names), rotation=60, ha="right", fontsize=font)
    axes.set_yticks(range(n), labels=list(label_names), fontsize=font)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    colour = "white" if normalised[i, j] > 0.5 else "black"
                    axes.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=font, color=colour)
    axes.set_title(title)
    return _save(figure, path)


def embed_2d(features: np.ndarray, method: str = "pca", seed: int = 0, *, threads: int | None = 1) -> np.ndarray:
    """(N, 2) projection of features: PCA (fast, faithful to global layout) or t-SNE (local neighbourhoods).

    t-SNE runs on ``threads`` OpenMP threads (None: library default); one is 15x faster on a busy 2-core machine.
    """
    features = _as_features(features, "features")
    centred = features - features.mean(axis=0)
    if method == "pca":
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        return centred @ vt[:2].T if vt.shape[0] >= 2 else np.pad(centred @ vt.T, ((0, 0), (0, 2 - vt.shape[0])))
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(features) - 1) / 3.0)))
        with threadpool_limits(limits=threads):
            return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(centred)
    raise ValueError(f"unknown embedding method '{method}' (use 'pca' or 'tsne')")


def plot_embedding(
    features: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    path: str | Path,
    *,
    method: str = "pca",
    seed: int = 0,
    title: str | None = None,
) -> Path:
    """Scatter of a 2D projection of the features, coloured by class: separable clusters = a useful encoder."""
    labels = _as_labels(labels, len(features), "labels")
    points = embed_2d(features, method, seed)
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 7))
    colours = plt.get_cmap("tab20" if len(label_names) > 10 else "tab10")
    for label in np.unique(labels):
        selected = labels == label
        name = label_names[label] if label < len(label_names) else str(label)
        axes.scatter(
            points[selected, 0], points[selected, 1], s=8, alpha=0.7, color=colours(label % colours.N), label=name
        )
    if len(np.unique(labels)) <= 30:
        axes.legend(fontsize=7, markerscale=2, loc="best", ncol=1 + len(label_names) // 15)
    axes.set_title(title or f"Feature embedding ({method.upper()})")
    axes.set_xticks([])
    axes.set_yticks([])
    return _save(figure, path)


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=110)
    _pyplot().close(figure)
    return path


# -------------------------------------------------------------------------------------------------------- report


def _jsonable(value: Any) -> Any:
    """numpy and Path values as plain JSON; NaN becomes null (JSON has no NaN); report-less keys are dropped."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items() if str(k) not in NOT_REPORTED}
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def _scalar_rows(results: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in results.items():
        name = f"{prefix}{key}"
        if str(key) in NOT_REPORTED:
            continue
        if isinstance(value, Mapping):
            rows.extend(_scalar_rows(value, f"{name} / "))
        elif isinstance(value, bool | int | float | str | np.generic) or value is None:
            rows.append((name, value.item() if isinstance(value, np.generic) else value))
    return rows


def _format(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def write_report(
    results: Mapping[str, Any],
    json_path: str | Path,
    md_path: str | Path,
    *,
    title: str = "Evaluation report",
    label_names: Sequence[str] | None = None,
) -> tuple[Path, Path]:
    """Write the results as JSON (everything but NOT_REPORTED keys) and as Markdown tables, one per section.

    Top-level keys are sections (e.g. "linear", "knn", "few_shot"); scalars inside them (nested dicts flattened
    with " / ") become table rows; arrays such as confusion matrices stay in the JSON only (the PNGs show them).
    With ``label_names``, a section's ``per_class_accuracy`` also gets a per-class table.
    """
    json_path, md_path = Path(json_path), Path(md_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(_jsonable(results), indent=2, sort_keys=False) + "\n")

    lines = [f"# {title}", ""]
    loose = _scalar_rows({k: v for k, v in results.items() if not isinstance(v, Mapping)})
    if loose:
        lines += ["| key | value |", "|---|---|", *(f"| {k} | {_format(v)} |" for k, v in loose), ""]
    for section, content in results.items():
        if not isinstance(content, Mapping):
            continue
        rows = _scalar_rows(content)
        lines += [f"## {section}", ""]
        if rows:
            lines += ["| metric | value |", "|---|---|", *(f"| {k} | {_format(v)} |" for k, v in rows)]
        else:
            lines.append("(no scalar results)")
        per_class = content.get("per_class_accuracy")
        if label_names is not None and per_class is not None and len(per_class) == len(label_names):
            lines += ["", "| class | accuracy |", "|---|---|"]
            lines += [
                f"| {_format(name)} | {_format(float(acc))} |" for name, acc in zip(label_names, per_class, strict=True)
            ]
        lines.append("")
    md_path.write_text("\n".join(lines))
    return json_path, md_path
