"""The blend candidates' registry and their combiners.

P has shape (models, clips, classes). A combiner is fit(P, y, settings) -> state and
apply(state, P, single_label) -> probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..kernel.portable.blend import EPS, stack_features, stacker_probabilities, weighted_average
from ..metrics import log_loss
from .scoring import accuracy


def fit_logloss_weights(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import minimize  # here, not at the top: the workflow's parse imports the package

    m = len(P)
    if y.ndim == 2:  # multi-label: every label's binary cross-entropy
        flat_y, flat_p = y.ravel(), P.reshape(m, -1)
        picked = np.where(flat_y > 0, flat_p, 1 - flat_p)  # each model's probability of what is true
    else:
        picked = P[:, np.arange(len(y)), y]  # (models, clips): only the true class matters for log-loss

    def loss(w):
        return -np.log(np.clip(w @ picked, EPS, None)).mean()

    def grad(w):
        return -(picked / np.clip(w @ picked, EPS, None)).mean(1)

    result = minimize(loss, np.full(m, 1 / m), jac=grad, method="SLSQP", bounds=[(0, 1)] * m,
                      constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}])  # fmt: skip
    weights = np.clip(result.x, 0, None)
    return weights / weights.sum()


def fit_accuracy_weights(P: np.ndarray, y: np.ndarray, iterations: int = 40) -> np.ndarray:
    """Greedy forward selection with replacement (Caruana et al., 2004): add the model that most
    improves accuracy (ties: log-loss) of the running average; weights are the selection counts."""
    m = len(P)
    counts = np.zeros(m)
    total = np.zeros_like(P[0])
    for _ in range(iterations):
        best = None
        for i in range(m):
            candidate = (total + P[i]) / (counts.sum() + 1)
            score = (accuracy(candidate, y), -log_loss(candidate, y))
            if best is None or score > best[0]:
                best = (score, i)
        counts[best[1]] += 1
        total += P[best[1]]
    return counts / counts.sum()


def fit_stacker(P: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    # Classes absent from a training split still get a column: the stacker predicts all 12.
    # newton-cg: ~10x faster than lbfgs on these few, strongly correlated features.
    model = LogisticRegression(C=1.0, max_iter=500, solver="newton-cg")
    model.fit(stack_features(P), y)
    return model


def apply_stacker(model, P: np.ndarray) -> np.ndarray:
    """The fitted stacker on P, by the notebook's arithmetic (its coefficients are what it ships)."""
    return stacker_probabilities(model.coef_, model.intercept_, model.classes_, P)


@dataclass(frozen=True)
class Candidate:
    """A way to combine the models, as the blend sees it.

    ``complexity``: how much it fits to the OOF rows it is chosen on — ``auto`` prefers the lowest
    whose CV is within the fold-to-fold noise of the best (a single model counts
    :data:`MODEL_COMPLEXITY`). ``fits``: whether it learns from the rows at all (one that does not
    needs no held-out fold to be scored honestly). ``weights``: whether its state is one weight per
    model (a column of weights.csv). ``single_label_only``: why a multi-label blend leaves it out, or "".
    """

    name: str
    complexity: int
    fit: Callable  # (P, y, settings) -> state
    apply: Callable = weighted_average  # (state, P, single_label) -> probabilities
    fits: bool = True
    weights: bool = True
    single_label_only: str = ""


#: Every candidate, in the order the default blend tries them; everything else derives from here.
REGISTRY: dict[str, Candidate] = {c.name: c for c in (
    Candidate("mean", 0, lambda P, y, settings: np.full(len(P), 1 / len(P)), fits=False),
    Candidate("logloss", 2, lambda P, y, settings: fit_logloss_weights(P, y)),
    Candidate("accuracy", 2, lambda P, y, settings: fit_accuracy_weights(P, y, settings.accuracy_iterations)),
    Candidate("stacking", 3, lambda P, y, settings: fit_stacker(P, y), lambda model, P, single_label: apply_stacker(model, P),
              weights=False, single_label_only="the multinomial stacker predicts one label per clip"),
)}  # fmt: skip
#: Picking one model is a choice among several: more fitted than the mean, less than any weights.
MODEL_COMPLEXITY = 1
METHODS = tuple(REGISTRY)
COMPLEXITY = {"model": MODEL_COMPLEXITY, **{name: c.complexity for name, c in REGISTRY.items()}}
#: The settings a multi-label blend turns off (they assume one label per clip): their "off" value and why.
SINGLE_LABEL_SETTINGS = {
    "temperature": (False, "temperature scaling calibrates one softmax"),
    "prior_correction": ("none", "EM re-estimates the prior of classes that exclude each other"),
    "match_mix": (False, "matching the label mix counts one label per clip"),
}
#: What a multi-label blend leaves out, and why, for the log.
SINGLE_LABEL_ONLY = {
    **{name: c.single_label_only for name, c in REGISTRY.items() if c.single_label_only},
    **{name: why for name, (_, why) in SINGLE_LABEL_SETTINGS.items()},
}


def fit_method(method: str, P: np.ndarray, y: np.ndarray, settings):
    return REGISTRY[method].fit(P, y, settings)


def apply_method(method: str, state, P: np.ndarray, single_label: bool = True) -> np.ndarray:
    """A fitted combiner on P; ``single_label`` False for multi-label tables."""
    return REGISTRY[method].apply(state, P, single_label)
