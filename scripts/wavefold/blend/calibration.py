"""Probabilities re-shaped after (or before) blending: temperatures, bias-corrected temperature
scaling, EM's estimate of the test set's label mix (bounded), and matching the labels to a mix.

What applies them to test probabilities lives in :mod:`wavefold.kernel.portable`, the code
competition's notebook, which runs them on the hidden test: the DAG uses the very same functions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..kernel.portable.blend import (EPS, apply_bias_corrected_temperature, bound_prior, em_prior,  # noqa: F401
                                       match_label_mix, normalise, scale_temperature)
from ..metrics import log_loss


def fit_temperature(p: np.ndarray, y: np.ndarray) -> float:
    """The temperature T that minimises the log-loss of softmax(log p / T)."""
    from scipy.optimize import minimize_scalar  # here, not at the top: the workflow's parse imports the package

    logp = np.log(np.clip(p, EPS, None))

    def loss(log_t):
        return log_loss(scale_temperature(logp, np.exp(log_t), logs=True), y)

    return float(np.exp(minimize_scalar(loss, bounds=(-3, 3), method="bounded").x))


def fit_bias_corrected_temperature(p: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Bias-corrected temperature scaling (Alexandari et al., 2020): softmax(log p / T + b), T and the
    per-class biases b minimising the log-loss on these (OOF) rows. Calibrated so, the probabilities
    carry the OOF rows' label mix, which is where EM then starts."""
    from scipy.optimize import minimize

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
