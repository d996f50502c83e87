"""The model a job trains (features + architecture) and the workflow's one probability format."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..features import FrontEnd
from ..models import create_model, input_kind
from ..settings.training import FeatureSettings, TrainSettings


class Classifier(nn.Module):
    """Front end (features) + architecture: takes float waveforms (batch, samples), gives logits.
    ``multi_label``: its outputs are independent yes/no logits (sigmoid), not one softmax."""

    def __init__(self, settings: TrainSettings, n_classes: int, multi_label: bool = False):
        super().__init__()
        self.multi_label = multi_label
        features = FeatureSettings.from_config(settings.features)
        params = dict(settings.params)
        if settings.architecture == "matchboxnet":
            params.setdefault("n_features", features.n_mfcc)
        self.front = FrontEnd(input_kind(settings.architecture), features)
        self.net = create_model(settings.architecture, n_classes, **params)

    def forward(self, wave):
        return self.net(self.front(wave))

    def head(self) -> nn.Module:
        """What fine-tuning calls the head (the rest is the backbone: :mod:`.optim`): the architecture's
        ``head`` module where it has one (timm's pooled or SED head, the PoolHeads), else its output layer."""
        head = getattr(self.net, "head", None)
        if isinstance(head, nn.Module):
            return head
        layer = self.output_layer()
        if layer is None:
            raise ValueError(f"{type(self.net).__name__} has neither a head module nor an output layer to fine-tune")
        return layer

    def output_layer(self) -> nn.Module | None:
        """The layer that makes the logits: the last linear or 1x1 convolution with one output per class."""
        n_classes = None
        for module in reversed(list(self.net.modules())):
            size = getattr(module, "out_features", None) or getattr(module, "out_channels", None)
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)) and module.bias is not None:
                n_classes = n_classes or size
                if size == n_classes:
                    return module
        return None

    @torch.no_grad()
    def start_at_prior(self, prior) -> bool:
        """Start each label's logit at the log-odds of its share of the training clips (multi-label).

        Why: with 80 labels of which a clip holds one or two, every sigmoid starts at 0.5 and the first
        epochs go into pushing 79 of them down, before any label is told apart (Lin et al., 2017, the
        "prior" initialisation of focal loss). Returns whether a layer was found to set."""
        layer = self.output_layer()
        if layer is None or layer.bias.numel() != len(prior):
            return False
        p = torch.as_tensor(np.clip(prior, 1e-4, 1 - 1e-4), dtype=layer.bias.dtype)
        layer.bias.copy_(torch.log(p / (1 - p)))
        return True

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)


def save(model: Classifier, settings: TrainSettings, label_space: list[str], path: Path) -> None:
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "settings": asdict(settings), "label_space": label_space,
                "multi_label": model.multi_label}, path)  # fmt: skip


def load(path: Path, device: torch.device) -> tuple[Classifier, list[str], TrainSettings]:
    """A saved model, on ``device``, the label space it predicts and the settings it was trained with."""
    saved = torch.load(path, map_location=device, weights_only=False)
    settings = TrainSettings.from_config(saved["settings"])
    # Built without its pretrained weights: the saved ones replace them (and their file may be elsewhere).
    built = replace(settings, params={**settings.params, "pretrained": None}) if "pretrained" in settings.params else settings
    model = Classifier(built, len(saved["label_space"]), saved.get("multi_label", False)).to(device)
    model.load_state_dict(saved["state_dict"])
    return model, saved["label_space"], settings


def probability_table(
    ids: list[str], probabilities: np.ndarray, labels, id_column: str, fold: int | None = None
) -> pd.DataFrame:
    """The one probability format of the workflow (README, "Probability tables"): an id column, the fold
    (out-of-fold tables), and one column per submission label, in the competition's order."""
    table = pd.DataFrame(probabilities, columns=list(labels))
    table.insert(0, id_column, ids)
    if fold is not None:
        table.insert(1, "fold", fold)
    return table
