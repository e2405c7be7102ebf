"""Few-shot heads on the frozen encoder's window features: what ``hetskel-teach`` fits (numpy and scikit-learn, no ROS).

An *example* is one labelled segment (a person doing the action once); the node classifies it window by window, so
an example brings the features of every window the node cuts from it. Two heads are fitted and cross-validated,
holding out one example of every label at a time (all of its windows: no window of a held-out example is ever seen
in fitting; with 5 examples a label that is 5 fits, whatever the number of labels):

- ``centroid``: cosine nearest class mean, ``softmax(s * cos(f, mean_c))``; one mean per class, nothing else to
  fit but the temperature ``s`` (chosen by the cross-validated log-likelihood, so that the node's ``threshold`` on
  the scores means about what it means for the trained head). It needs only a class's statistics, so the
  bundle's own classes join it from their stored means (``--add``) without any of their examples;
- ``logistic``: multinomial logistic regression on L2-normalised features (C = 10); classes of the bundle without
  examples in the recording are represented by samples drawn from their stored mean and variance.

With 3-5 examples a class, the class mean is the estimate with the least variance; logistic regression can win
when classes differ in a few directions only (30 mocap classes that differ only in style: 57% of windows right for
the centroid, 73% for logistic; bench/results/teach_time.json). The one with the better cross-validated accuracy
per window is kept, since the node labels window by window (ties: the centroid, fewer parameters); the accuracy per
example (the mean of its window probabilities) is reported beside it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from hetskel_ros.model.calibration import IDLE, Calibration, ClassStats
from hetskel_ros.model.head import LinearHead, softmax, unit

HEADS = ("centroid", "logistic")
TEMPERATURES = (2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0)
DEFAULT_TEMPERATURE = 16.0  # the centroid head's scale before cross-validation chooses one of TEMPERATURES
LOGISTIC_C = 10.0
SYNTHETIC_PER_CLASS = 50  # samples standing in for a class known only by its statistics
MIN_EXAMPLES = 2  # a label needs this many examples to be cross-validated at all


@dataclass(frozen=True)
class Example:
    """One labelled segment and the window features the node cuts from it."""

    label: str
    name: str  # where it came from (e.g. "labels.csv row 4, track 2, 3.0-5.5 s")
    features: np.ndarray  # (W, D)


@dataclass
class CrossValidation:
    """Leave-one-example-out result of one head kind."""

    kind: str
    accuracy: float  # per example
    window_accuracy: float
    confusion: np.ndarray  # (L, L) examples: rows = truth, columns = predicted, over ``labels``
    labels: list[str]
    log_likelihood: float = math.nan  # mean log-probability of the true class, per window
    temperature: float = DEFAULT_TEMPERATURE  # centroid: the scale the cross-validated likelihood chose

    def table(self) -> str:
        """The confusion as a text table (rows: truth; columns: predicted, numbered as the rows)."""
        width = max(len(n) for n in self.labels)
        used = [i for i in range(len(self.labels)) if self.confusion[i].sum() or self.confusion[:, i].sum()]
        head = " " * (width + 4) + " ".join(f"{k:>3}" for k in used)
        rows = [f"{k:>2} {self.labels[k]:<{width}} " + " ".join(f"{int(self.confusion[k, j]):>3}" for j in used)
                for k in used]
        return "\n".join([head, *rows])


@dataclass
class TaughtHead:
    head: LinearHead
    labels: list[str]
    calibration: Calibration
    results: dict[str, CrossValidation] = field(default_factory=dict)


def _prototypes(examples: Sequence[Example], labels: list[str], base: Mapping[str, ClassStats]) -> np.ndarray:
    """(L, D) unit class means: a label's own examples where it has some, else its stored statistics."""
    rows = []
    for label in labels:
        own = [e.features for e in examples if e.label == label]
        rows.append(np.concatenate(own).mean(axis=0) if own else base[label].mean)
    return unit(np.stack(rows))


def unit_logistic(x: np.ndarray, y: np.ndarray, classes: int, c: float = LOGISTIC_C, max_iter: int = 2000,
                  absent_bias: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(classes, D) weight and (classes,) bias of a multinomial logistic regression on unit-length rows of ``x``
    (the contract of model.head.LinearHead); a class without rows keeps zero weights and ``absent_bias``."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=max_iter)
    model.fit(unit(x), y)
    weight = np.zeros((classes, x.shape[1]))
    bias = np.full(classes, absent_bias)
    if len(model.classes_) == 2:  # sklearn's binary form: one row; the softmax of (-z/2, z/2) is the same
        weight[model.classes_[1]], bias[model.classes_[1]] = model.coef_[0] / 2, model.intercept_[0] / 2
        weight[model.classes_[0]], bias[model.classes_[0]] = -model.coef_[0] / 2, -model.intercept_[0] / 2
    else:
        weight[model.classes_], bias[model.classes_] = model.coef_, model.intercept_
    return weight, bias


def _logistic(examples: Sequence[Example], labels: list[str], base: Mapping[str, ClassStats], seed: int = 0):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k, label in enumerate(labels):
        own = [e.features for e in examples if e.label == label]
        if own:
            x = np.concatenate(own)
        else:
            stats = base[label]
            x = rng.normal(stats.mean, np.sqrt(np.maximum(stats.var, 0.0)), (SYNTHETIC_PER_CLASS, len(stats.mean)))
        xs.append(x)
        ys.append(np.full(len(x), k))
    return unit_logistic(np.concatenate(xs), np.concatenate(ys), len(labels))


def fit_head(kind: str, examples: Sequence[Example], labels: list[str], base: Mapping[str, ClassStats],
             temperature: float = DEFAULT_TEMPERATURE) -> LinearHead:
    """A head of ``kind`` over ``labels`` from ``examples`` (and ``base`` statistics for labels without any)."""
    if kind == "centroid":
        prototypes = _prototypes(examples, labels, base)
        return LinearHead(temperature * prototypes, np.zeros(len(labels)), {"kind": kind, "temperature": temperature})
    if kind == "logistic":
        weight, bias = _logistic(examples, labels, base)
        return LinearHead(weight, bias, {"kind": kind, "C": LOGISTIC_C})
    raise ValueError(f"unknown head kind {kind!r}; known: {HEADS}")


def example_folds(examples: Sequence[Example]) -> list[int]:
    """Fold of each example: its rank among the examples of its label. Each fold holds out one example of every
    label (leave-one-example-out per label): with 5 examples a label, 5 fits however many labels there are."""
    seen: Counter = Counter()
    folds = []
    for example in examples:
        folds.append(seen[example.label])
        seen[example.label] += 1
    return folds


def cross_validate(kind: str, examples: Sequence[Example], labels: list[str], base: Mapping[str, ClassStats]
                   ) -> CrossValidation:
    """Hold out one example of every label at a time (``example_folds``), fit on the others, score the held-out
    examples' windows (see the module doc)."""
    index = {n: i for i, n in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), np.int64)
    window_hits = windows = 0
    held_logits: list[tuple[np.ndarray, int]] = []  # centroid: cosines, to choose the temperature after
    folds = example_folds(examples)
    for fold in sorted(set(folds)):
        rest = [e for e, f in zip(examples, folds, strict=True) if f != fold]
        held_out = [e for e, f in zip(examples, folds, strict=True) if f == fold]
        head = fit_head(kind, rest, labels, base) if kind != "centroid" else None
        prototypes = _prototypes(rest, labels, base) if kind == "centroid" else None
        for held in held_out:
            truth = index[held.label]
            if prototypes is not None:
                cosines = unit(held.features) @ prototypes.T
                held_logits.append((cosines, truth))
                probabilities = softmax(DEFAULT_TEMPERATURE * cosines)
            else:
                probabilities = head.probabilities(held.features)
                held_logits.append((np.log(np.maximum(probabilities, 1e-12)), truth))
            confusion[truth, int(np.argmax(probabilities.mean(axis=0)))] += 1
            window_hits += int((probabilities.argmax(axis=1) == truth).sum())
            windows += len(probabilities)
    result = CrossValidation(kind, float(np.trace(confusion) / max(confusion.sum(), 1)),
                             window_hits / max(windows, 1), confusion, list(labels))
    if kind == "centroid":
        result.log_likelihood, result.temperature = max((_log_likelihood(held_logits, s), s) for s in TEMPERATURES)
    else:
        result.log_likelihood = _log_likelihood(held_logits, 1.0, normalised=True)
    return result


def _log_likelihood(held: list[tuple[np.ndarray, int]], scale: float, normalised: bool = False) -> float:
    total = count = 0.0
    for logits, truth in held:
        logp = logits if normalised else np.log(np.maximum(softmax(scale * logits), 1e-300))
        total += float(logp[:, truth].sum())
        count += len(logp)
    return total / max(count, 1.0)


def merge_stats(a: ClassStats, b: ClassStats) -> ClassStats:
    """Pooled statistics of two samples of the same class."""
    n = a.count + b.count
    mean = (a.count * a.mean + b.count * b.mean) / n
    var = (a.count * (a.var + (a.mean - mean) ** 2) + b.count * (b.var + (b.mean - mean) ** 2)) / n
    return ClassStats(n, mean, var)


def refit_calibration(examples: Sequence[Example], labels: list[str], base: Calibration | None,
                      keep: float = 0.95, provenance: dict | None = None) -> Calibration:
    """The idle/unknown calibration for ``labels``: per class the stored statistics pooled with the taught
    examples' windows, the bundle's idle class kept, and a rejection distance that still accepts ``keep`` of the
    taught windows when each is measured against prototypes fitted without its own example (never looser than
    the bundle's own distance is tight: the larger of the two is kept)."""
    stats: dict[str, ClassStats] = {}
    base_stats = dict(base.stats) if base is not None else {}
    for label in labels:
        own = [e.features for e in examples if e.label == label]
        taught = ClassStats.of(np.concatenate(own)) if own else None
        stored = base_stats.get(label)
        if taught is not None and stored is not None:
            stats[label] = merge_stats(stored, taught)
        elif taught is not None or stored is not None:
            stats[label] = taught if taught is not None else stored
    if IDLE in base_stats:
        stats[IDLE] = base_stats[IDLE]
    distances = []
    known = {n: s for n, s in stats.items() if n != IDLE}
    for i, held in enumerate(examples):
        rest = [e for j, e in enumerate(examples) if j != i]
        prototype_labels = [n for n in labels if n in known and (n != held.label or any(e.label == n for e in rest)
                                                                 or n in base_stats)]
        prototypes = _prototypes(rest, prototype_labels, base_stats)  # never the held-out example itself
        distances.append((1.0 - unit(held.features) @ prototypes.T).min(axis=1))
    reject = float(np.quantile(np.concatenate(distances), keep)) if distances else math.inf
    if base is not None and math.isfinite(base.reject_distance):
        reject = max(reject, base.reject_distance)
    return Calibration(list(labels), stats, reject, keep, dict(provenance or {}))


def teach_head(examples: Sequence[Example], labels: list[str], base: Calibration | None, kinds: Sequence[str] = HEADS,
               keep: float = 0.95) -> TaughtHead:
    """Cross-validate each head kind, fit the best on every example, and refit the calibration."""
    stats = dict(base.stats) if base is not None else {}
    missing = [n for n in labels if n not in stats and not any(e.label == n for e in examples)]
    if missing:
        raise ValueError(f"labels {missing} have neither examples nor stored statistics (the bundle has no "
                         f"calibration.json for them: run python -m training.calibrate, or use --replace)")
    results = {kind: cross_validate(kind, examples, labels, stats) for kind in kinds}
    best = max(results.values(), key=lambda r: (round(r.window_accuracy, 6), r.kind == "centroid", r.accuracy))
    head = fit_head(best.kind, examples, labels, stats, best.temperature)
    head.info.update({"cv_accuracy": {k: r.accuracy for k, r in results.items()},
                      "cv_window_accuracy": {k: r.window_accuracy for k, r in results.items()},
                      "examples": len(examples)})
    calibration = refit_calibration(examples, labels, base, keep)
    return TaughtHead(head, list(labels), calibration, results)
