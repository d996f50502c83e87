"""Model architectures for keyword spotting, created from one registry by name.

``create_model("bc_resnet", n_classes=12, width=8)`` builds BC-ResNet-8. Each architecture
declares the input it takes (``INPUT_KINDS``): ``logmel`` and ``mfcc`` are (batch, 1, features,
frames) made on the device by :mod:`wavefold.features`; ``waveform`` is (batch, 1, samples).
Every model ends in global average pooling, so the clip length and the number of features can
change without touching the model.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

REGISTRY: dict[str, type[nn.Module]] = {}
INPUT_KINDS = ("logmel", "mfcc", "waveform")


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        if cls.input_kind not in INPUT_KINDS:
            raise ValueError(f"model {name!r}: input_kind {cls.input_kind!r} is not one of {INPUT_KINDS}")
        REGISTRY[name] = cls
        return cls

    return add


def create_model(name: str, n_classes: int, **params) -> nn.Module:
    """The architecture ``name`` with its hyper-parameters; unknown names and parameters are clear errors."""
    if name not in REGISTRY:
        raise KeyError(f"unknown architecture {name!r}; registered: {sorted(REGISTRY)}")
    try:
        return REGISTRY[name](n_classes=n_classes, **params)
    except TypeError as error:
        raise TypeError(f"architecture {name!r}: {error}") from error


def input_kind(name: str) -> str:
    return REGISTRY[name].input_kind


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _conv_bn_relu(c_in: int, c_out: int, kernel=3, stride=1, groups=1, dims=2) -> nn.Sequential:
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    padding = kernel // 2 if isinstance(kernel, int) else tuple(k // 2 for k in kernel)
    return nn.Sequential(
        conv(c_in, c_out, kernel, stride=stride, padding=padding, groups=groups, bias=False),
        norm(c_out),
        nn.ReLU(inplace=True),
    )


class _PoolHead(nn.Module):
    """Global average pooling, dropout, linear classifier."""

    def __init__(self, channels: int, n_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(x.flatten(2).mean(-1)))


@register("lenet")
class LeNet(nn.Module):
    """The baseline: a small VGG/LeNet-like CNN on the log-mel spectrogram."""

    input_kind = "logmel"

    def __init__(self, n_classes: int, channels: tuple[int, ...] = (32, 64, 128), dropout: float = 0.3):
        super().__init__()
        layers, c_in = [], 1
        for c_out in channels:
            layers += [_conv_bn_relu(c_in, c_out), _conv_bn_relu(c_out, c_out), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = _PoolHead(c_in, n_classes, dropout)

    def forward(self, x):
        return self.head(self.features(x))


@register("res15")
class Res15(nn.Module):
    """res15 (Tang & Lin, 2018): 13 dilated 3x3 conv layers of 45 channels, ~238K parameters."""

    input_kind = "mfcc"

    def __init__(self, n_classes: int, channels: int = 45, blocks: int = 6, dropout: float = 0.0):
        super().__init__()
        self.stem = nn.Conv2d(1, channels, 3, padding=1, bias=False)
        self.layers = nn.ModuleList()
        for i in range(2 * blocks):
            dilation = 2 ** (i // 3)
            self.layers.append(nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False))
        # As in the paper: ReLU, then batch norm without affine parameters.
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels, affine=False) for _ in range(2 * blocks))
        self.head = _PoolHead(channels, n_classes, dropout)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        residual = x
        for i, (conv, norm) in enumerate(zip(self.layers, self.norms)):
            x = torch.relu(conv(x))
            if i % 2 == 1:
                x = x + residual
                residual = x
            x = norm(x)
        return self.head(x)


class SubSpectralNorm(nn.Module):
    """Batch norm per frequency sub-band (Chang et al., 2021), as BC-ResNet uses. Where the band count
    does not divide the frequency axis (an unusual n_mels), it is plain batch norm."""

    def __init__(self, channels: int, sub_bands: int):
        super().__init__()
        self.sub_bands = sub_bands
        self.norm = nn.BatchNorm2d(channels * sub_bands)
        self.plain = nn.BatchNorm2d(channels)

    def forward(self, x):
        batch, channels, freq, time = x.shape
        if freq % self.sub_bands:
            return self.plain(x)
        x = x.reshape(batch, channels * self.sub_bands, freq // self.sub_bands, time)
        return self.norm(x).reshape(batch, channels, freq, time)


class BCBlock(nn.Module):
    """A broadcasted-residual block: frequency-wise 2-D depthwise conv, then a temporal 1-D path on the
    frequency-averaged map, broadcast back over frequency."""

    def __init__(self, c_in: int, c_out: int, stride: int, dilation: int, sub_bands: int, dropout: float):
        super().__init__()
        self.transition = c_in != c_out
        self.project = _conv_bn_relu(c_in, c_out, kernel=1) if self.transition else nn.Identity()
        self.freq_dw = nn.Conv2d(c_out, c_out, (3, 1), stride=(stride, 1), padding=(1, 0), groups=c_out, bias=False)
        self.ssn = SubSpectralNorm(c_out, sub_bands)
        self.time_dw = nn.Conv2d(c_out, c_out, (1, 3), padding=(0, dilation), dilation=(1, dilation), groups=c_out,
                                 bias=False)  # fmt: skip
        self.time_bn = nn.BatchNorm2d(c_out)
        self.pointwise = nn.Conv2d(c_out, c_out, 1, bias=False)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x):
        x = self.project(x)
        f2 = self.ssn(self.freq_dw(x))
        f1 = f2.mean(dim=2, keepdim=True)
        f1 = self.dropout(self.pointwise(nn.functional.silu(self.time_bn(self.time_dw(f1)))))
        out = f2 + f1 if self.transition or self.freq_dw.stride[0] != 1 else x + f2 + f1
        return torch.relu(out)


@register("bc_resnet")
class BCResNet(nn.Module):
    """BC-ResNet (Kim et al., 2021); ``width`` is tau: 8 gives BC-ResNet-8 (~320K parameters)."""

    input_kind = "logmel"

    def __init__(self, n_classes: int, width: float = 8, sub_bands: int = 5, dropout: float = 0.1):
        super().__init__()
        c = [int(round(k * width)) for k in (16, 8, 12, 16, 20, 32)]
        self.stem = nn.Sequential(nn.Conv2d(1, c[0], 5, stride=(2, 1), padding=2, bias=False), nn.BatchNorm2d(c[0]),
                                  nn.ReLU(inplace=True))  # fmt: skip
        blocks, c_in = [], c[0]
        for stage, (repeats, stride, dilation) in enumerate(((2, 1, 1), (2, 2, 2), (4, 2, 4), (4, 1, 8))):
            c_out = c[stage + 1]
            for i in range(repeats):
                blocks.append(BCBlock(c_in, c_out, stride if i == 0 else 1, dilation, sub_bands, dropout))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head_dw = nn.Conv2d(c_in, c_in, 5, padding=2, groups=c_in, bias=False)
        self.head_pw = _conv_bn_relu(c_in, c[5], kernel=1)
        self.classifier = nn.Conv2d(c[5], n_classes, 1)

    def forward(self, x):
        x = self.head_pw(self.head_dw(self.blocks(self.stem(x))))
        return self.classifier(x.mean(dim=(2, 3), keepdim=True)).flatten(1)


@register("m5")
class M5(nn.Module):
    """A 1-D CNN on the raw waveform (M5 of Dai et al., 2017): a wide strided first layer, then small kernels."""

    input_kind = "waveform"

    def __init__(self, n_classes: int, channels: int = 128, dropout: float = 0.2):
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn_relu(1, channels, kernel=81, stride=4, dims=1), nn.MaxPool1d(4),
            _conv_bn_relu(channels, channels, kernel=3, dims=1), nn.MaxPool1d(4),
            _conv_bn_relu(channels, 2 * channels, kernel=3, dims=1), nn.MaxPool1d(4),
            _conv_bn_relu(2 * channels, 4 * channels, kernel=3, dims=1), nn.MaxPool1d(4),
        )  # fmt: skip
        self.head = _PoolHead(4 * channels, n_classes, dropout)

    def forward(self, x):
        return self.head(self.features(x))


class _SeparableConv1d(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int = 1):
        super().__init__(
            nn.Conv1d(c_in, c_in, kernel, padding=dilation * (kernel // 2), dilation=dilation, groups=c_in, bias=False),
            nn.Conv1d(c_in, c_out, 1, bias=False),
            nn.BatchNorm1d(c_out),
        )


class _MatchboxBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, repeats: int, dropout: float):
        super().__init__()
        layers = []
        for i in range(repeats):
            layers.append(_SeparableConv1d(c_in if i == 0 else c_out, c_out, kernel))
            if i < repeats - 1:
                layers += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
        self.body = nn.Sequential(*layers)
        self.residual = nn.Sequential(nn.Conv1d(c_in, c_out, 1, bias=False), nn.BatchNorm1d(c_out))
        self.out = nn.Sequential(nn.ReLU(inplace=True), nn.Dropout(dropout))

    def forward(self, x):
        return self.out(self.body(x) + self.residual(x))


@register("matchboxnet")
class MatchboxNet(nn.Module):
    """MatchboxNet BxRxC (Majumdar & Ginsburg, 2020) on MFCCs; the default is 3x2x64 (~80K parameters)."""

    input_kind = "mfcc"

    def __init__(self, n_classes: int, n_features: int = 40, blocks: int = 3, repeats: int = 2, channels: int = 64,
                 dropout: float = 0.1):  # fmt: skip
        super().__init__()
        self.prologue = nn.Sequential(_SeparableConv1d(n_features, 128, 11), nn.ReLU(inplace=True))
        body, c_in = [], 128
        for b in range(blocks):
            body.append(_MatchboxBlock(c_in, channels, 13 + 2 * b, repeats, dropout))
            c_in = channels
        self.body = nn.Sequential(*body)
        self.epilogue = nn.Sequential(
            _SeparableConv1d(channels, 128, 29, dilation=2), nn.ReLU(inplace=True),
            nn.Conv1d(128, 128, 1, bias=False), nn.BatchNorm1d(128), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.classifier = nn.Conv1d(128, n_classes, 1)
        self.n_features = n_features

    def forward(self, x):
        x = x.squeeze(1)  # (batch, features, frames): features are channels
        if x.shape[1] != self.n_features:
            raise ValueError(f"matchboxnet expects {self.n_features} MFCCs (n_features), got {x.shape[1]}")
        return self.classifier(self.epilogue(self.body(self.prologue(x)))).mean(-1)


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int):
        super().__init__()
        hidden = c_in * expansion
        self.use_residual = stride == 1 and c_in == c_out
        self.body = nn.Sequential(
            _conv_bn_relu(c_in, hidden, kernel=1) if expansion != 1 else nn.Identity(),
            _conv_bn_relu(hidden, hidden, kernel=3, stride=stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x):
        return x + self.body(x) if self.use_residual else self.body(x)


@register("mobilenetv2")
class MobileNetV2(nn.Module):
    """A MobileNetV2-style 2-D backbone (Sandler et al., 2018) sized for log-mel spectrograms."""

    input_kind = "logmel"

    def __init__(self, n_classes: int, width: float = 1.0, expansion: int = 6, dropout: float = 0.2):
        super().__init__()

        def ch(c: int) -> int:
            return max(8, int(round(c * width / 8)) * 8)

        # (channels, repeats, stride, expansion): the first bottleneck does not expand, as in the paper
        plan = ((16, 1, 1, 1), (24, 2, 2, expansion), (32, 3, 2, expansion), (64, 3, 2, expansion), (96, 2, 1, expansion))
        layers, c_in = [_conv_bn_relu(1, ch(32), stride=1)], ch(32)
        for channels, repeats, stride, expand in plan:
            for i in range(repeats):
                layers.append(_InvertedResidual(c_in, ch(channels), stride if i == 0 else 1, expand))
                c_in = ch(channels)
        layers.append(_conv_bn_relu(c_in, ch(320), kernel=1))
        self.features = nn.Sequential(*layers)
        self.head = _PoolHead(ch(320), n_classes, dropout)

    def forward(self, x):
        return self.head(self.features(x))
