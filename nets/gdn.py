"""Generalized divisive normalization (Balle, Laparra & Simoncelli, ICLR 2016/2017, eq. 3-4).

``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)`` (GDN, the analysis transform's
nonlinearity) and ``y_i = x_i * sqrt(...)`` (inverse GDN, the synthesis transform's),
applied across channels at each position. ``beta`` and ``gamma`` must stay positive: they
are stored reparametrized (``NonNegative``: a square with a small pedestal and a lower
bound whose gradient still pushes up from below, Balle 2018, "Efficient nonlinear
transforms for lossy image compression", section 2).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _LowerBound(torch.autograd.Function):
    """``max(x, bound)``, whose gradient passes where ``x`` is above the bound or the
    gradient would raise it: a parameter stuck at the bound can leave it."""

    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x, bound)
        return torch.maximum(x, bound)

    @staticmethod
    def backward(ctx, grad):
        x, bound = ctx.saved_tensors
        passes = (x >= bound) | (grad < 0)
        return grad * passes, None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    return _LowerBound.apply(x, torch.tensor(bound, dtype=x.dtype, device=x.device))


class NonNegative(nn.Module):
    """Stores a value ``v >= minimum`` as ``p = sqrt(v + pedestal)``; ``forward(p)`` gives
    ``max(p, sqrt(minimum + pedestal))^2 - pedestal``."""

    def __init__(self, minimum: float = 0.0, pedestal: float = 2.0 ** -18):
        super().__init__()
        self.pedestal = pedestal
        self.bound = (minimum + pedestal) ** 0.5

    def init(self, value: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.clamp(value + self.pedestal, min=self.pedestal))

    def forward(self, stored: torch.Tensor) -> torch.Tensor:
        return lower_bound(stored, self.bound) ** 2 - self.pedestal


class GDN(nn.Module):
    """GDN over the channels of (N, C, H, W) input; ``inverse=True`` multiplies instead
    (IGDN). Initialized to ``beta = 1``, ``gamma = gamma_init * I``, as the paper's code."""

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta_reparam = NonNegative(minimum=beta_min)
        self.gamma_reparam = NonNegative()
        self.beta = nn.Parameter(self.beta_reparam.init(torch.ones(channels)))
        self.gamma = nn.Parameter(self.gamma_reparam.init(gamma_init * torch.eye(channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma)
        norm = torch.sqrt(F.conv2d(x * x, gamma[:, :, None, None], beta))
        return x * norm if self.inverse else x / norm

    def extra_repr(self) -> str:
        return f"{self.beta.numel()}, inverse={self.inverse}"
