"""A category head learnt from labelled photos, and the held-out figures that decide its promotion.

Pure numpy (and scipy's optimiser): no Django, no model. ``manage.py
clip_adapt`` (docs/adaptation.md) gathers the labels and stored embeddings,
``head_fit`` learns the head, ``held_out_figures`` and ``promotion_decision``
say whether it may serve.

The recipe works on frozen, stored image embeddings (no GPU, seconds for
10,000 photos):

* **Gaussian discriminant analysis** of the labelled embeddings (class means,
  one shared covariance with shrinkage towards a multiple of the identity):
  the linear classifier that is optimal for Gaussian classes of one shape.
  On the known-answer model with catalogue names the model never learnt, it
  was right for 98.5 % of fresh pictures from 480 labels, where class means
  alone (Tip-Adapter's cache reduced to prototypes) gave 97.7 %, a
  Tip-Adapter cache 97.9 % and a linear probe initialised from the text
  classifier (LP++) 97.5 % (docs/adaptation.md has the comparison).
* **Blended with the zero-shot text classifier** (WiSE-FT's interpolation,
  on logits): ``(1 - alpha) * scale * cos(x, prompt) + alpha * gda(x)``, so a
  catalogue whose names the model knows keeps what the prompts know, and one
  whose names it does not (alpha near 1) learns them from its photos.
* **Calibrated**: one temperature and a bias per category, fitted by
  log-loss on out-of-fold predictions, so that a category's ``score`` is the
  probability that the photo's category is this one (0.5: as likely as not).

Alpha and the shrinkage are chosen by the out-of-fold log-loss of the
calibrated head on the training split; the held-out split only ever judges.
"""

import hashlib
from dataclasses import dataclass, field

import numpy as np

ALPHAS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
SHRINKAGES = (0.1, 0.3, 0.6, 0.9)
FOLDS = 4
HELD_OUT_SHARE = 0.25
# A category needs this many labelled photos to be learnt (its class mean);
# the head covers only such categories.
MIN_PHOTOS_PER_CATEGORY = 5
BOOTSTRAP_ROUNDS = 400
ECE_BINS = 10
# A category's figures are compared before and after only when its held-out
# photos are at least this many (fewer: too wide an interval to mean anything).
MIN_CATEGORY_HELD_OUT = 10
# The gate's "at no cost": how far below 0 the accuracy and AUROC differences'
# 95 % intervals may reach when calibration alone improves.
ACCURACY_TOLERANCE = 0.01
AUROC_TOLERANCE = 0.001
# L2 weight of the per-category calibration biases (they stay near 0 unless the labels say otherwise).
BIAS_PENALTY = 1e-2


@dataclass
class CategoryHead:
    """What an adaptation serves: calibrated probabilities over its categories."""

    categories: list
    text_weights: np.ndarray  # (K, d) the zero-shot prompt embeddings it was fitted with
    class_weights: np.ndarray  # (K, d) the discriminant's weights
    class_bias: np.ndarray  # (K,)
    alpha: float
    logit_scale: float
    temperature: float = 1.0
    bias: np.ndarray = field(default=None)  # (K,) per-category calibration
    match: "MatchCalibration | None" = None  # the text-photo match probability, where labels allowed

    def __post_init__(self):
        if self.bias is None:
            self.bias = np.zeros(len(self.categories))

    def logits(self, embeddings):
        """(n, d) unit image embeddings → (n, K) blended logits, before calibration."""
        embeddings = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
        zero_shot = self.logit_scale * embeddings @ self.text_weights.T
        learnt = embeddings @ self.class_weights.T + self.class_bias
        return (1.0 - self.alpha) * zero_shot + self.alpha * learnt

    def calibrated_logits(self, embeddings):
        return self.logits(embeddings) / self.temperature + self.bias

    def probabilities(self, embeddings):
        """(n, K): the probability that each photo's category is each of the head's categories."""
        return softmax(self.calibrated_logits(embeddings))

    def to_bytes(self):
        import io

        buffer = io.BytesIO()
        np.savez(
            buffer, categories=np.array(self.categories, dtype=str), text_weights=self.text_weights,
            class_weights=self.class_weights, class_bias=self.class_bias, bias=self.bias,
            scalars=np.array([self.alpha, self.logit_scale, self.temperature]),
            match=np.array([self.match.slope, self.match.intercept] if self.match else [], dtype=np.float64),
            match_categories=np.array(list(self.match.category_curves) if self.match else [], dtype=str),
            match_curves=np.array(list(self.match.category_curves.values()) if self.match else [],
                                  dtype=np.float64).reshape(-1, 2),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data):
        import io

        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as stored:
            alpha, logit_scale, temperature = (float(value) for value in stored["scalars"])
            match = stored["match"] if "match" in stored.files else np.zeros(0)
            curves = {str(name): [float(value) for value in curve]
                      for name, curve in zip(stored["match_categories"], stored["match_curves"])} \
                if "match_curves" in stored.files else {}
            return cls(
                categories=[str(name) for name in stored["categories"]], text_weights=stored["text_weights"],
                class_weights=stored["class_weights"], class_bias=stored["class_bias"], alpha=alpha,
                logit_scale=logit_scale, temperature=temperature, bias=stored["bias"],
                match=MatchCalibration(slope=float(match[0]), intercept=float(match[1]), category_curves=curves)
                if len(match) else None,
            )


def softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


# Splits


def key_fraction(key, salt=""):
    """A stable number in [0, 1) for ``key`` (a listing id): the same split on every run and machine."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def stratified_held_out(keys, labels, *, share=HELD_OUT_SHARE, salt="held-out"):
    """A boolean mask of held-out rows: ``share`` of each label's rows (at least one of a
    label with two or more), chosen by the keys' stable fractions."""
    keys, labels = list(keys), np.asarray(labels)
    held_out = np.zeros(len(keys), dtype=bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) < 2:
            continue
        ordered = sorted(rows, key=lambda row: key_fraction(keys[row], salt))
        count = max(1, int(round(share * len(rows))))
        held_out[ordered[:count]] = True
    return held_out


def fold_numbers(keys, labels, *, folds=FOLDS):
    """Each row's fold (0 to ``folds - 1``), dealt round-robin within each label in stable order."""
    keys, labels = list(keys), np.asarray(labels)
    numbers = np.zeros(len(keys), dtype=int)
    for label in np.unique(labels):
        rows = sorted(np.flatnonzero(labels == label), key=lambda row: key_fraction(keys[row], "folds"))
        for position, row in enumerate(rows):
            numbers[row] = position % folds
    return numbers


# Fitting


def discriminant_fit(embeddings, labels, count, *, shrinkage):
    """Gaussian discriminant analysis with a shared, shrunk covariance: ``(weights (K, d), bias (K,))``."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    means = np.stack([embeddings[labels == k].mean(axis=0) for k in range(count)])
    centred = embeddings - means[labels]
    covariance = centred.T @ centred / max(len(embeddings) - count, 1)
    dim = covariance.shape[0]
    covariance = (1.0 - shrinkage) * covariance + shrinkage * (np.trace(covariance) / dim) * np.eye(dim)
    weights = np.linalg.solve(covariance, means.T).T
    bias = -0.5 * np.einsum("kd,kd->k", weights, means)
    return weights, bias


def calibration_fit(logits, labels):
    """``(temperature, bias)`` minimising the log-loss of ``softmax(logits / T + bias)``."""
    from scipy.optimize import minimize

    logits = np.asarray(logits, dtype=np.float64)
    count = logits.shape[1]
    onehot = np.eye(count)[labels]

    def loss(theta):
        inverse, bias = np.exp(theta[0]), theta[1:]
        probabilities = softmax(logits * inverse + bias)
        picked = np.log(np.maximum((probabilities * onehot).sum(axis=1), 1e-300))
        value = -picked.mean() + BIAS_PENALTY * (bias**2).sum()
        residual = probabilities - onehot
        grad_inverse = (residual * logits).sum(axis=1).mean() * inverse
        grad_bias = residual.mean(axis=0) + 2 * BIAS_PENALTY * bias
        return value, np.concatenate([[grad_inverse], grad_bias])

    found = minimize(loss, np.zeros(count + 1), jac=True, method="L-BFGS-B")
    return float(1.0 / np.exp(found.x[0])), found.x[1:]


def log_loss(probabilities, labels):
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(picked, 1e-300)).mean())


@dataclass(frozen=True)
class FitChoice:
    alpha: float
    shrinkage: float
    out_of_fold_log_loss: float
    out_of_fold_accuracy: float


def head_fit(embeddings, labels, *, keys, categories, text_weights, logit_scale):
    """The calibrated head for ``embeddings`` labelled ``labels`` (indices into ``categories``).

    Alpha and shrinkage are chosen by out-of-fold log-loss (folds by ``keys``);
    the temperature and biases are fitted on the chosen setting's
    out-of-fold logits; the discriminant is then refitted on every row.
    Returns ``(head, FitChoice)``.
    """
    embeddings, labels = np.asarray(embeddings, dtype=np.float64), np.asarray(labels)
    count = len(categories)
    folds = fold_numbers(keys, labels)
    zero_shot = logit_scale * embeddings @ np.asarray(text_weights).T
    best = None
    for shrinkage in SHRINKAGES:
        learnt = _out_of_fold_discriminant(embeddings, labels, folds, count, shrinkage=shrinkage)
        for alpha in ALPHAS:
            logits = (1.0 - alpha) * zero_shot + alpha * learnt
            temperature, bias = calibration_fit(logits, labels)
            probabilities = softmax(logits / temperature + bias)
            choice = FitChoice(
                alpha=alpha, shrinkage=shrinkage, out_of_fold_log_loss=round(log_loss(probabilities, labels), 6),
                out_of_fold_accuracy=round(float(np.mean(probabilities.argmax(axis=1) == labels)), 6),
            )
            if best is None or choice.out_of_fold_log_loss < best[0].out_of_fold_log_loss:
                best = (choice, temperature, bias)
    choice, temperature, bias = best
    weights, class_bias = discriminant_fit(embeddings, labels, count, shrinkage=choice.shrinkage)
    head = CategoryHead(
        categories=list(categories), text_weights=np.asarray(text_weights, dtype=np.float64), class_weights=weights,
        class_bias=class_bias, alpha=choice.alpha, logit_scale=float(logit_scale), temperature=temperature, bias=bias,
    )
    return head, choice


def _out_of_fold_discriminant(embeddings, labels, folds, count, *, shrinkage):
    logits = np.zeros((len(embeddings), count))
    for fold in np.unique(folds):
        train = folds != fold
        if len(np.unique(labels[train])) < count:  # a category all in one fold: fit on every row
            train = np.ones(len(labels), dtype=bool)
        weights, bias = discriminant_fit(embeddings[train], labels[train], count, shrinkage=shrinkage)
        logits[folds == fold] = embeddings[folds == fold] @ weights.T + bias
    return logits


# Held-out figures


@dataclass
class HeldOut:
    """Held-out photos: ``scores`` (n, K) per category, ``truth`` (n,) the category index or -1
    when only ``against`` is known (the index of a category the photo is not: a ``wrong_category``
    rejection)."""

    scores: np.ndarray
    truth: np.ndarray
    against: np.ndarray

    def pairs(self):
        """Labelled (score, applies, category column) triples: every category of a photo with a
        known category, the rejected category of the others."""
        rows = self.truth >= 0
        applies = np.zeros(self.scores.shape, dtype=bool)
        applies[np.flatnonzero(rows), self.truth[rows]] = True
        known = np.zeros(self.scores.shape, dtype=bool)
        known[rows] = True
        negatives = np.flatnonzero(~rows & (self.against >= 0))
        known[negatives, self.against[negatives]] = True
        columns = np.broadcast_to(np.arange(self.scores.shape[1]), self.scores.shape)
        return self.scores[known], applies[known], columns[known]


def figures(held_out):
    """Accuracy and macro-F1 of the top category, AUROC and ECE of every labelled pair."""
    rows = held_out.truth >= 0
    predicted = held_out.scores[rows].argmax(axis=1)
    truth = held_out.truth[rows]
    scores, applies, _ = held_out.pairs()
    return {
        "accuracy": float(np.mean(predicted == truth)) if len(truth) else float("nan"),
        "macro_f1": macro_f1(truth, predicted, held_out.scores.shape[1]),
        "auroc": auroc(scores, applies),
        "ece": expected_calibration_error(scores, applies),
    }


def macro_f1(truth, predicted, count):
    values = []
    for k in range(count):
        true_positive = np.sum((predicted == k) & (truth == k))
        predicted_k, actual_k = np.sum(predicted == k), np.sum(truth == k)
        if actual_k == 0 and predicted_k == 0:
            continue
        values.append(2 * true_positive / (predicted_k + actual_k))
    return float(np.mean(values)) if values else float("nan")


def auroc(scores, applies):
    """The probability that an applying pair outscores a non-applying one (ties count half)."""
    positives, negatives = np.sum(applies), np.sum(~applies)
    if not positives or not negatives:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(scores)  # tied scores share their average rank
    return float((ranks[applies].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def expected_calibration_error(scores, applies, bins=ECE_BINS):
    """Mean |confidence - frequency| over equal-width score bins, weighted by their pairs."""
    if not len(scores):
        return float("nan")
    which = np.minimum((np.asarray(scores) * bins).astype(int), bins - 1)
    error = 0.0
    for number in range(bins):
        inside = which == number
        if inside.any():
            error += inside.mean() * abs(scores[inside].mean() - applies[inside].mean())
    return float(error)


def category_figures(held_out, categories):
    """Per category: ``accuracy`` (its photos whose top category is right), ``f1`` of the top
    category, ``auroc`` and ``ece`` of its column's labelled pairs, and how many photos it has."""
    rows = held_out.truth >= 0
    predicted, truth = held_out.scores[rows].argmax(axis=1), held_out.truth[rows]
    scores, applies, columns = held_out.pairs()
    table = {}
    for k, category in enumerate(categories):
        of, chosen = int(np.sum(truth == k)), int(np.sum(predicted == k))
        right = int(np.sum((truth == k) & (predicted == k)))
        own = columns == k
        table[category] = {
            "held_out": of, "accuracy": right / of if of else float("nan"),
            "f1": 2 * right / (of + chosen) if of + chosen else float("nan"),
            "auroc": auroc(scores[own], applies[own]), "ece": expected_calibration_error(scores[own], applies[own]),
        }
    return table


CATEGORY_METRICS = ("accuracy", "f1", "auroc", "ece")


def held_out_figures(before, after, *, categories, rounds=BOOTSTRAP_ROUNDS, seed=0):
    """Before and after figures with paired bootstrap 95 % intervals (resampling photos).

    ``before`` and ``after`` are ``HeldOut`` of the same photos. Returns
    ``{"overall": {metric: row}, "categories": {category: {"held_out": n, metric: row}}}``, each
    row ``{"before", "after", "difference", "before_interval", "after_interval", "difference_interval"}``.
    """
    rng = np.random.default_rng(seed)
    count = len(before.truth)
    samples = {"before": [], "after": []}
    for _ in range(rounds):
        pick = rng.integers(0, count, count)
        for name, held_out in (("before", before), ("after", after)):
            resampled = HeldOut(held_out.scores[pick], held_out.truth[pick], held_out.against[pick])
            samples[name].append((figures(resampled), category_figures(resampled, categories)))
    points = {name: (figures(held_out), category_figures(held_out, categories))
              for name, held_out in (("before", before), ("after", after))}

    def row(read):
        values = {name: [read(sample) for sample in samples[name]] for name in samples}
        point_before, point_after = read(points["before"]), read(points["after"])
        return {
            "before": _rounded(point_before), "after": _rounded(point_after),
            "difference": _rounded(point_after - point_before),
            "before_interval": _interval(values["before"]), "after_interval": _interval(values["after"]),
            "difference_interval": _interval(np.array(values["after"]) - np.array(values["before"])),
        }

    overall = {metric: row(lambda sample, metric=metric: sample[0][metric]) for metric in points["before"][0]}
    per_category = {
        category: {
            "held_out": points["before"][1][category]["held_out"],
            **{metric: row(lambda sample, category=category, metric=metric: sample[1][category][metric])
               for metric in CATEGORY_METRICS},
        }
        for category in categories
    }
    return {"overall": overall, "categories": per_category}


def _interval(values):
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return [None, None]
    return [_rounded(np.percentile(values, 2.5)), _rounded(np.percentile(values, 97.5))]


def _rounded(value):
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None


def promotion_decision(figures_table):
    """``(promote?, reason)`` from paired 95 % intervals of the held-out differences (after - before).

    Promoted when it ranks better (the accuracy difference's interval above 0),
    or when it is better calibrated at no cost: the ECE difference's interval
    below 0, the accuracy's reaching no lower than ``-ACCURACY_TOLERANCE`` and
    the AUROC's no lower than ``-AUROC_TOLERANCE``. Either way no category
    with ``MIN_CATEGORY_HELD_OUT`` held-out photos may get worse beyond its
    own interval (its recall difference's upper end below 0). Labels that
    carry no information (shuffled) improve neither ranking figure: refused.
    """
    overall = figures_table["overall"]
    accuracy, auroc_row, ece = overall["accuracy"], overall["auroc"], overall["ece"]
    accuracy_low = accuracy["difference_interval"][0]
    auroc_low = auroc_row["difference_interval"][0]
    ece_high = ece["difference_interval"][1]
    summary = (
        f"held-out accuracy {accuracy['before']} -> {accuracy['after']} (difference {accuracy['difference_interval']}), "
        f"ECE {ece['before']} -> {ece['after']} (difference {ece['difference_interval']})"
    )
    ranks_better = accuracy_low is not None and accuracy_low > 0
    calibrates_better = (
        ece_high is not None and ece_high < 0 and accuracy_low is not None and accuracy_low >= -ACCURACY_TOLERANCE
        and auroc_low is not None and auroc_low >= -AUROC_TOLERANCE
    )
    if not (ranks_better or calibrates_better):
        return False, f"no proven improvement: {summary} (95 % intervals)"
    for category, row in figures_table["categories"].items():
        accuracy_row = row["accuracy"]
        high = accuracy_row["difference_interval"][1]
        if row["held_out"] >= MIN_CATEGORY_HELD_OUT and high is not None and high < 0:
            return False, (
                f"category {category!r} gets worse: accuracy {accuracy_row['before']} -> {accuracy_row['after']} on "
                f"{row['held_out']} held-out photos (95 % interval of the difference {accuracy_row['difference_interval']})"
            )
    return True, f"{'better ranking' if ranks_better else 'better calibration'}: {summary} (95 % intervals)"


# Match calibration: the probability that a text describes a photo


# Labels of each class needed before the probability is fitted (fewer: no match_probability).
MIN_MATCH_LABELS_PER_CLASS = 20


@dataclass(frozen=True)
class MatchCalibration:
    """``P(the text describes the photo | score) = sigmoid(slope * score + intercept)``: the shared
    curve, or a category's own (``category_curves``: {category: [slope, intercept]}) where it had
    enough labels of its own. Texts of categories sit on different scales (a colour alone scores
    lower than a full caption), so one curve for all can be miscalibrated for each."""

    slope: float
    intercept: float
    category_curves: dict = field(default_factory=dict)

    def probability(self, score, category=""):
        slope, intercept = self.category_curves.get(category, (self.slope, self.intercept))
        exponent = slope * float(score) + intercept
        return 1.0 / (1.0 + np.exp(-max(min(exponent, 60.0), -60.0)))

    def as_dict(self):
        return {"slope": self.slope, "intercept": self.intercept, "category_curves": self.category_curves}


def _platt(scores, matches):
    """``(slope, intercept)`` of a logistic fit of ``matches`` on ``scores``."""
    from scipy.optimize import minimize

    def loss(theta):
        probabilities = 1.0 / (1.0 + np.exp(-np.clip(theta[0] * scores + theta[1], -60, 60)))
        clipped = np.clip(probabilities, 1e-12, 1 - 1e-12)
        value = -np.mean(matches * np.log(clipped) + (1 - matches) * np.log(1 - clipped))
        residual = probabilities - matches
        return value, np.array([np.mean(residual * scores), np.mean(residual)])

    found = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(found.x[0]), float(found.x[1])


def match_calibration_fit(scores, matches, categories=None):
    """Platt scaling of similarity scores on moderators' match (approved) / mismatch (rejected)
    labels: one shared curve, and its own for each category holding ``MIN_MATCH_LABELS_PER_CLASS``
    labels of each class."""
    scores, matches = np.asarray(scores, dtype=np.float64), np.asarray(matches, dtype=np.float64)
    slope, intercept = _platt(scores, matches)
    curves = {}
    categories = np.asarray(categories if categories is not None else [""] * len(scores), dtype=object)
    for category in sorted({str(value) for value in categories if value}):
        own = categories == category
        if min(matches[own].sum(), (1 - matches[own]).sum()) >= MIN_MATCH_LABELS_PER_CLASS:
            curves[category] = [round(value, 6) for value in _platt(scores[own], matches[own])]
    return MatchCalibration(slope=slope, intercept=intercept, category_curves=curves)


def match_figures(probabilities, matches, *, rounds=BOOTSTRAP_ROUNDS, seed=0):
    """Held-out ECE and Brier score of match probabilities, with 95 % bootstrap intervals."""
    probabilities, matches = np.asarray(probabilities, dtype=np.float64), np.asarray(matches, dtype=bool)
    rng = np.random.default_rng(seed)

    def both(pick):
        return (expected_calibration_error(probabilities[pick], matches[pick]),
                float(np.mean((probabilities[pick] - matches[pick]) ** 2)))

    samples = [both(rng.integers(0, len(matches), len(matches))) for _ in range(rounds)]
    ece, brier = both(np.arange(len(matches)))
    return {
        "pairs": int(len(matches)),
        "ece": _rounded(ece), "ece_interval": _interval([sample[0] for sample in samples]),
        "brier": _rounded(brier), "brier_interval": _interval([sample[1] for sample in samples]),
    }
