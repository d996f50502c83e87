"""Optimizer and learning-rate schedule of a training job."""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..settings.training import TrainSettings

log = logging.getLogger(__name__)

#: OneCycleLR needs a warm-up and an annealing phase of at least two steps each (with fewer, its
#: phase length is 0 and it divides by it); shorter runs get a constant rate, and say so.
MIN_ONECYCLE_STEPS = 4


def optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=settings.lr, momentum=0.9, weight_decay=settings.weight_decay, nesterov=True
    )


def scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings, steps_per_epoch: int):
    """The schedule over ``epochs`` x ``steps_per_epoch`` optimizer steps; any positive count works."""
    total = max(1, settings.epochs * steps_per_epoch)
    if settings.scheduler == "onecycle":
        if total < MIN_ONECYCLE_STEPS:
            log.info("onecycle: only %d steps in all; a constant learning rate instead", total)
            return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        # At least two warm-up steps, and at least two to anneal.
        warmup = min(max(0.2, 2.0 / total), 1 - 2.0 / total)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=total, pct_start=warmup)
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
