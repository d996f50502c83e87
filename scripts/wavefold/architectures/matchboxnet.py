"""MatchboxNet (Majumdar & Ginsburg, 2020): 1-D time-channel separable convolutions on MFCCs."""

from __future__ import annotations

from torch import nn

from . import register


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
