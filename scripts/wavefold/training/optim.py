"""Optimizer, learning-rate schedule and steps of a training job, fine-tuning included.

Fine-tuning the way Kaggle's winners do it, for any architecture: the backbone (everything but the
head, :meth:`.classifier.Classifier.head`) learns at ``lr x backbone_lr_ratio``, is frozen for the
first ``freeze_epochs`` (weights and BatchNorm statistics: only the head learns), and ``accumulate``
batches make one optimizer step (a larger effective batch than the device holds).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..settings.training import TrainSettings
from .classifier import Classifier

log = logging.getLogger(__name__)

#: OneCycleLR needs a warm-up and an annealing phase of at least two steps each (with fewer, its
#: phase length is 0 and it divides by it); shorter runs get a constant rate, and say so.
MIN_ONECYCLE_STEPS = 4


def backbone_parameters(model: Classifier) -> list[nn.Parameter]:
    head = {id(p) for p in model.head().parameters()}
    return [p for p in model.parameters() if id(p) not in head]


def parameter_groups(model: Classifier, settings: TrainSettings) -> list[dict]:
    """The head's parameters at ``lr`` (the first group: the one the curve's lr column shows), the
    backbone's at ``lr x backbone_lr_ratio``; one group when the ratio is 1."""
    if settings.backbone_lr_ratio == 1:
        return [{"params": list(model.parameters()), "lr": settings.lr}]
    head = list(model.head().parameters())
    return [{"params": head, "lr": settings.lr},
            {"params": backbone_parameters(model), "lr": settings.lr * settings.backbone_lr_ratio}]  # fmt: skip


def optimizer(model: Classifier, settings: TrainSettings) -> torch.optim.Optimizer:
    groups = parameter_groups(model, settings)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.SGD(groups, lr=settings.lr, momentum=0.9, weight_decay=settings.weight_decay, nesterov=True)


def scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings, steps_per_epoch: int):
    """The schedule over ``epochs`` x ``steps_per_epoch`` optimizer steps; any positive count works."""
    total = max(1, settings.epochs * steps_per_epoch)
    if settings.scheduler == "onecycle":
        if total < MIN_ONECYCLE_STEPS:
            log.info("onecycle: only %d steps in all; a constant learning rate instead", total)
            return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        # At least two warm-up steps, and at least two to anneal.
        warmup = min(max(0.2, 2.0 / total), 1 - 2.0 / total)
        peaks = [group["lr"] for group in optimizer.param_groups]  # each group's own (backbone_lr_ratio)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total, pct_start=warmup)
    if settings.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def averaged(model: nn.Module, settings: TrainSettings) -> torch.optim.swa_utils.AveragedModel | None:
    """The exponential moving average of ``model``'s weights and buffers (``ema_decay``; None when 0).

    torch's own AveragedModel: its copy is updated after every optimizer step, BatchNorm statistics
    included (use_buffers), so the averaged model needs no extra pass to re-estimate them."""
    if not settings.ema_decay:
        return None
    average = torch.optim.swa_utils.get_ema_multi_avg_fn(settings.ema_decay)
    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=average, use_buffers=True)


def freeze_backbone(model: Classifier, frozen: bool) -> None:
    """The backbone frozen (no gradients, BatchNorm layers in eval mode: their statistics stay) or
    trained again; call it after ``model.train()``, which puts every layer back in training mode."""
    for parameter in backbone_parameters(model):
        parameter.requires_grad_(not frozen)
    if frozen:
        head = set(model.head().modules())
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module not in head:
                module.eval()


def steps_per_epoch(batches: int, accumulate: int) -> int:
    return -(-batches // accumulate)


class Stepper:
    """An epoch's optimizer steps, one per ``accumulate`` batches, each followed by the scheduler's
    and the moving average's (``ema``).

    Each batch's loss is divided by the number of batches in its step (the last step of an epoch may
    have fewer), so that a step sees their mean: k batches of b clips step as one batch of k x b
    would (BatchNorm statistics aside, which see b at a time)."""

    def __init__(self, optimizer, scheduler, scaler: torch.amp.GradScaler, accumulate: int = 1,
                 ema: torch.optim.swa_utils.AveragedModel | None = None, model: nn.Module | None = None):  # fmt: skip
        self.optimizer, self.scheduler, self.scaler, self.ema, self.model = optimizer, scheduler, scaler, ema, model
        self.accumulate = accumulate
        self.batches = 0

    def start_epoch(self, batches: int) -> None:
        self.batches = batches
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor, batch: int) -> None:
        """Batch number ``batch`` (from 0) of the epoch: its gradients added, and the step taken when
        its group is complete."""
        first = batch - batch % self.accumulate
        in_step = min(self.accumulate, self.batches - first)
        self.scaler.scale(loss / in_step).backward()
        if batch + 1 == first + in_step:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
