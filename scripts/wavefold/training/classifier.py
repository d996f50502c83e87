"""The model a job trains (features + architecture) and the workflow's one probability format."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..features import FrontEnd
from ..models import create_model, input_kind
from .settings import FeatureSettings, TrainSettings


class Classifier(nn.Module):
    """Front end (features) + architecture: takes float waveforms (batch, samples)."""

    def __init__(self, settings: TrainSettings, n_classes: int):
        super().__init__()
        features = FeatureSettings.from_config(settings.features)
        params = dict(settings.params)
        if settings.architecture == "matchboxnet":
            params.setdefault("n_features", features.n_mfcc)
        self.front = FrontEnd(input_kind(settings.architecture), features)
        self.net = create_model(settings.architecture, n_classes, **params)

    def forward(self, wave):
        return self.net(self.front(wave))


def save(model: Classifier, settings: TrainSettings, label_space: list[str], path: Path) -> None:
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "settings": asdict(settings), "label_space": label_space}, path)


def load(path: Path, device: torch.device) -> tuple[Classifier, list[str], TrainSettings]:
    """A saved model, on ``device``, the label space it predicts and the settings it was trained with."""
    saved = torch.load(path, map_location=device, weights_only=False)
    settings = TrainSettings.from_config(saved["settings"])
    model = Classifier(settings, len(saved["label_space"])).to(device)
    model.load_state_dict(saved["state_dict"])
    return model, saved["label_space"], settings


def probability_table(
    ids: list[str], probabilities: np.ndarray, labels, id_column: str, fold: int | None = None
) -> pd.DataFrame:
    """The one probability format of the workflow (DESIGN.md, Contracts): an id column, the fold
    (out-of-fold tables), and one column per submission label, in the competition's order."""
    table = pd.DataFrame(probabilities, columns=list(labels))
    table.insert(0, id_column, ids)
    if fold is not None:
        table.insert(1, "fold", fold)
    return table
