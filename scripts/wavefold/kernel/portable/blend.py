"""The blend applied to test probabilities: temperatures, weights or stacker, EM prior correction and
label-mix matching, in the workflow's order (:func:`apply_blend`). Fitting them is the workflow's
(wavefold.blend); applying them is this module's, for the DAG and the notebook alike."""

from __future__ import annotations

import numpy as np

#: Probabilities are clipped to [EPS, 1 - EPS] before a logarithm (wavefold.metrics.EPS: the same value).
EPS = 1e-7

def normalise(p: np.ndarray) -> np.ndarray:
    return p / np.clip(p.sum(-1, keepdims=True), EPS, None)


def scale_temperature(p: np.ndarray, temperature: float, logs: bool = False) -> np.ndarray:
    logits = (p if logs else np.log(np.clip(p, EPS, None))) / temperature
    logits = logits - logits.max(-1, keepdims=True)
    return normalise(np.exp(logits))


def apply_bias_corrected_temperature(p: np.ndarray, temperature: float, bias: np.ndarray) -> np.ndarray:
    return scale_temperature(np.log(np.clip(p, EPS, None)) / temperature + bias, 1.0, logs=True)


def weighted_average(weights: np.ndarray, P: np.ndarray, single_label: bool = True) -> np.ndarray:
    """The models' probabilities (models, clips, labels) averaged with ``weights``; rows renormalised
    where they are one label's distribution (a multi-label table's weights sum to 1 already)."""
    blended = np.tensordot(weights, P, axes=1)
    return normalise(blended) if single_label else blended


def stack_features(P: np.ndarray) -> np.ndarray:
    """The stacker's inputs: every model's log-probabilities side by side, a row per clip."""
    return np.log(np.clip(P, EPS, None)).transpose(1, 0, 2).reshape(P.shape[1], -1)


def stacker_probabilities(coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray, P: np.ndarray) -> np.ndarray:
    """A fitted multinomial logistic regression (scikit-learn's coef_, intercept_, classes_) on P: the
    classes it never saw get EPS."""
    scores = stack_features(P) @ np.asarray(coef).T + np.asarray(intercept)
    if scores.shape[1] == 1:  # two classes: scikit-learn's binary form, one score for the second
        scores = np.hstack([-scores, scores]) / 2
    out = np.full(P.shape[1:], EPS)
    out[:, np.asarray(classes, dtype=int)] = scale_temperature(scores, 1.0, logs=True)
    return normalise(out)


def bound_prior(prior: np.ndarray, reference: np.ndarray, max_ratio: float) -> np.ndarray:
    """``prior`` with every class held within [1/max_ratio, max_ratio] x ``reference``, summing to 1:
    clip(scale x prior) to those bounds, with the one scale that makes it sum to 1 (found by bisection;
    the sum grows with the scale)."""
    low, high = reference / max_ratio, np.minimum(reference * max_ratio, 1.0)
    if low.sum() >= 1.0:  # max_ratio 1: nothing may move
        return reference / reference.sum()
    prior = np.clip(prior, EPS, None)
    lo, hi = np.log(EPS), np.log(1 / EPS)
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.clip(np.exp(mid) * prior, low, high).sum() < 1.0 else (lo, mid)
    bounded = np.clip(np.exp((lo + hi) / 2) * prior, low, high)
    return bounded / bounded.sum()


def em_prior(probabilities: np.ndarray, train_prior: np.ndarray, iterations: int = 100, tol: float = 1e-6,
             max_ratio: float | None = None):  # fmt: skip
    """Saerens et al. (2002): re-estimate the class prior of unlabelled data and adjust its posteriors.

    ``max_ratio``: each class's estimate is held within [1/max_ratio, max_ratio] x ``train_prior`` at
    every step (bounded EM; None: unbounded)."""
    train_prior = np.clip(train_prior, EPS, None)
    train_prior = train_prior / train_prior.sum()
    prior = train_prior.copy()
    for _ in range(iterations):
        new_prior = normalise(probabilities * (prior / train_prior)).mean(0)
        if max_ratio is not None:
            new_prior = bound_prior(new_prior, train_prior, max_ratio)
        converged = np.abs(new_prior - prior).max() < tol
        prior = new_prior
        if converged:
            break
    return normalise(probabilities * (prior / train_prior)), prior


def match_label_mix(probabilities: np.ndarray, target: np.ndarray | None = None,
                    iterations: int = 300) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Re-weight the classes so that the argmax labels come in the mix ``target`` (default: the mean
    probability of each class, the "probabilistic classify and count" estimate of the mix).

    Why: under a shift of voices and recording, posteriors go flat, and the class that covers
    everything unfamiliar ("unknown") wins the argmax of clips whose probability for it is small:
    the argmax counts then send far more clips to it than the probabilities themselves expect (the
    hard-shift demo: mean p(unknown) 0.29 against 76% argmax-unknown, truth 23%). Matching the counts
    to the probabilities' own mix removes that distortion and changes nothing where the two agree.
    It uses the test probabilities only (no labels). Returns (re-weighted probabilities, weights).

    The weights are found by multiplicative updates toward the target with a decaying step; the best
    iterate (smallest total variation between the label shares and the target) is kept."""
    n, classes = probabilities.shape
    target = probabilities.mean(0) if target is None else np.asarray(target, float)
    log_p = np.log(np.clip(probabilities, EPS, None))
    bias, best, best_gap = np.zeros(classes), np.zeros(classes), np.inf
    for step in range(iterations):
        shares = np.bincount((log_p + bias).argmax(1), minlength=classes) / n
        gap = 0.5 * np.abs(shares - target).sum()
        if gap < best_gap:
            best, best_gap = bias.copy(), gap
        if gap <= 0.5 / n:
            break
        bias += 0.5 * 0.98**step * (np.log(target + 1e-6) - np.log(shares + 1e-6))
    weights = np.exp(best - best.max())
    return normalise(probabilities * weights), weights


def apply_blend(recipe: dict, P: np.ndarray) -> np.ndarray:
    """The final blend (``recipe``, as ``wavefold.blend`` wrote it) on the members' test probabilities
    P (members, clips, labels), in the workflow's order: temperatures, the combiner, EM, matching."""
    single_label = not recipe["multi_label"]
    combine = recipe["combine"]
    if combine["kind"] == "member":
        out = P[combine["member"]]
    else:
        if recipe.get("temperatures") is not None:
            P = np.stack([scale_temperature(p, t) for p, t in zip(P, recipe["temperatures"])])
        if combine["kind"] == "weights":
            out = weighted_average(np.asarray(combine["weights"]), P, single_label)
        elif combine["kind"] == "stacking":
            out = stacker_probabilities(combine["coef"], combine["intercept"], combine["classes"], P)
        else:
            raise ValueError(f"recipe.json: unknown combiner {combine['kind']!r}")
    em = recipe.get("em")
    if em:
        if em.get("calibration"):
            out = apply_bias_corrected_temperature(out, em["calibration"]["temperature"],
                                                   np.asarray(em["calibration"]["bias"]))  # fmt: skip
        out = em_prior(out, np.asarray(em["reference"]), max_ratio=em["max_ratio"])[0]
    if recipe.get("match_mix"):
        out = match_label_mix(out)[0]
    return out
