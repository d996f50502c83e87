"""Probabilities re-shaped after (or before) blending: temperatures, bias-corrected temperature
scaling, EM's estimate of the test set's label mix (bounded), and matching the labels to a mix."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize, minimize_scalar

from ..metrics import EPS, log_loss


def normalise(p: np.ndarray) -> np.ndarray:
    return p / np.clip(p.sum(-1, keepdims=True), EPS, None)


def fit_temperature(p: np.ndarray, y: np.ndarray) -> float:
    """The temperature T that minimises the log-loss of softmax(log p / T)."""
    logp = np.log(np.clip(p, EPS, None))

    def loss(log_t):
        return log_loss(scale_temperature(logp, np.exp(log_t), logs=True), y)

    return float(np.exp(minimize_scalar(loss, bounds=(-3, 3), method="bounded").x))


def scale_temperature(p: np.ndarray, temperature: float, logs: bool = False) -> np.ndarray:
    logits = (p if logs else np.log(np.clip(p, EPS, None))) / temperature
    logits = logits - logits.max(-1, keepdims=True)
    return normalise(np.exp(logits))


def fit_bias_corrected_temperature(p: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Bias-corrected temperature scaling (Alexandari et al., 2020): softmax(log p / T + b), T and the
    per-class biases b minimising the log-loss on these (OOF) rows. Calibrated so, the probabilities
    carry the OOF rows' label mix, which is where EM then starts."""
    logp = np.log(np.clip(p, EPS, None))
    onehot = np.eye(p.shape[1])[y]

    def loss_and_grad(theta):
        inv_t, bias = np.exp(theta[0]), theta[1:]
        q = scale_temperature(logp * inv_t + bias, 1.0, logs=True)
        loss = -np.log(np.clip(q[np.arange(len(y)), y], EPS, None)).mean()
        residual = (q - onehot) / len(y)
        return loss, np.concatenate([[np.sum(residual * logp) * inv_t], residual.sum(0)])

    theta = minimize(loss_and_grad, np.zeros(1 + p.shape[1]), jac=True, method="L-BFGS-B").x
    return float(np.exp(-theta[0])), theta[1:]


def apply_bias_corrected_temperature(p: np.ndarray, temperature: float, bias: np.ndarray) -> np.ndarray:
    return scale_temperature(np.log(np.clip(p, EPS, None)) / temperature + bias, 1.0, logs=True)


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


def reference_prior(chosen: str, names: list[str], weights: pd.DataFrame, trained: dict[str, np.ndarray],
                    y: np.ndarray, n_labels: int) -> np.ndarray:  # fmt: skip
    """The class prior the chosen blend's probabilities are made under: where EM starts from.

    A model's probabilities assume the label mix it was trained on (``trained``, from its metrics);
    a weighted blend, the weighted mix; the stacker, fitted on OOF rows, the OOF label mix (as does a
    teammate's model, whose training mix is unknown)."""
    oof_mix = np.bincount(y, minlength=n_labels) / len(y)
    prior_of = {name: trained.get(name, oof_mix) for name in names}
    if chosen in names:
        return prior_of[chosen]
    if chosen == "stacking":
        return oof_mix
    w = weights.set_index("model")[chosen].reindex(names).to_numpy()
    return sum(wi * prior_of[name] for wi, name in zip(w, names))
