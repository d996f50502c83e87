"""The blend's settings (config section ``blend``) and its error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..errors import ExplainedError
from ..settings import bounded
from .candidates import METHODS, REGISTRY
from .scoring import CHOOSE_BY


class BlendError(ExplainedError, ValueError):
    """Probability tables that cannot be blended; the message names the file and the fix."""


#: The ``blend`` settings that choose what is blended or which round is submitted, not how a blend
#: is fitted: not :class:`BlendSettings` fields, and not the blend rule's settings params.
NOT_FIT_SETTINGS = ("external", "final_round", "across_rounds")


@dataclass(frozen=True)
class BlendSettings:
    # auto (the simplest candidate within the fold-to-fold noise of the best CV) | a model | a blend method
    method: str = "auto"
    candidates: tuple = field(default=METHODS, metadata={"choices": lambda: tuple(REGISTRY)})
    # Per-model temperatures fitted on OOF before blending: in-domain calibration a shifted test set
    # does not share (off: see config/config.yaml).
    temperature: bool = False
    prior_correction: Literal["none", "em"] = "none"
    em_max_ratio: float = bounded(3.0, minimum=1)  # EM's estimate of a class stays within [1/r, r] x its start
    # Where EM starts: "trained" (the mix the models were trained under, as they are) or "calibrated"
    # (the blend first calibrated on OOF by bias-corrected temperature scaling; then the OOF mix).
    em_start: Literal["trained", "calibrated"] = "calibrated"
    accuracy_iterations: int = bounded(40, minimum=1)
    choice_noise_se: float = bounded(1.0, minimum=0)  # auto: a more fitted candidate must beat a simpler one by this many SEs
    # What auto ranks the candidates by: accuracy (the competition's metric, on the training mix),
    # balanced_accuracy (the mean recall per class: blind to the class mix, for a test mix unlike
    # training's), or auto: balanced_accuracy where the shift check finds the test set shifted, else accuracy.
    choose_by: str = field(default="auto", metadata={"choices": lambda: CHOOSE_BY})
    # The shift check: the test set counts as shifted when the models disagree on its clips this many
    # times as often as on the OOF rows (see shift_check).
    shift_ratio: float = bounded(1.25, above=0)
    # Label the test clips so that each label's share is the share the blend's own probabilities give
    # it (their mean), instead of taking each clip's argmax: see match_label_mix (off: config.yaml says why).
    match_mix: bool = False
