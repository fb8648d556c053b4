"""End-to-end optimized image compression (Balle, Laparra & Simoncelli, ICLR 2017).

An analysis transform (convolutions and GDN, section 2) maps an image to latents ``y``;
they are quantized to integers and entropy-coded with a factorized, non-parametric
density (one learned cumulative per channel: Balle et al. 2018, appendix 6.1, the
"factorized prior"); a synthesis transform (transposed convolutions and inverse GDN)
maps them back. Training replaces rounding with additive uniform noise (section 3; the
``"noise"`` proxy of :mod:`nets.jpeg_dl`) and minimizes ``rate + lambda * distortion``.
:meth:`Balle2017.compress` codes real bytes with ``constriction``'s range coder, from
probability tables frozen by :meth:`FactorizedEntropyModel.update`, so that the encoder
and the decoder agree bit for bit.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .gdn import GDN, lower_bound
from .jpeg_dl import noise_quantize

#: Probabilities below this are the tails a channel's coding range leaves out.
TAIL_MASS = 1e-9
LIKELIHOOD_BOUND = 1e-9


class FactorizedEntropyModel(nn.Module):
    """One learned density per channel, for latents quantized to integers: the cumulative
    ``c(x)`` is a small monotone network (``filters`` wide; softplus-positive matrices,
    tanh-gated biases), and an integer's probability is ``c(k + 1/2) - c(k - 1/2)``."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        widths = (1, *filters, 1)
        scale = init_scale ** (1 / (len(widths) - 1))
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        for i in range(len(widths) - 1):
            init = math.log(math.expm1(1 / scale / widths[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, widths[i + 1], widths[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, widths[i + 1], 1) - 0.5))
            if i < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, widths[i + 1], 1)))
        # Frozen coding tables (update()): each channel's probabilities over [offset, offset + length).
        self.register_buffer("offsets", torch.zeros(channels, dtype=torch.int32))
        self.register_buffer("lengths", torch.zeros(channels, dtype=torch.int32))
        self.register_buffer("tables", torch.zeros(channels, 1, dtype=torch.float64))

    def logits_cumulative(self, x: torch.Tensor) -> torch.Tensor:
        """(C, 1, N) values -> (C, 1, N) logits of the cumulative."""
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, y: torch.Tensor) -> torch.Tensor:
        """Probabilities of integer-or-noisy latents (B, C, H, W), bounded below."""
        b, c, h, w = y.shape
        values = y.transpose(0, 1).reshape(c, 1, -1)
        lower = self.logits_cumulative(values - 0.5)
        upper = self.logits_cumulative(values + 0.5)
        sign = -torch.sign(lower + upper).detach()  # evaluate in the flatter tail: no cancellation
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        p = lower_bound(p, LIKELIHOOD_BOUND)
        return p.reshape(c, b, h, w).transpose(0, 1)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(quantized latents: noisy in training, rounded in evaluation; their likelihoods)."""
        y_hat = noise_quantize(y, 1.0, self.training)
        return y_hat, self.likelihood(y_hat)

    @torch.no_grad()
    def update(self, search: int = 4096) -> None:
        """Freezes each channel's coding table: the integers whose probability mass,
        with the tails beyond them, leaves out at most :data:`TAIL_MASS`."""
        channels = self.offsets.numel()
        grid = torch.arange(-search, search + 1, dtype=torch.float32, device=self.offsets.device)
        lower = self.logits_cumulative((grid - 0.5).expand(channels, 1, -1)).double()[:, 0]
        upper = self.logits_cumulative((grid + 0.5).expand(channels, 1, -1)).double()[:, 0]
        sign = -torch.sign(lower + upper)  # in float64, in the flatter tail: both tails resolved
        pmf = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        offsets, lengths, rows = [], [], []
        for c in range(channels):
            keep = torch.nonzero(pmf[c] > TAIL_MASS / 2).flatten()
            first, last = (int(keep[0]), int(keep[-1])) if keep.numel() else (search, search)
            offsets.append(first - search)
            lengths.append(last - first + 1)
            rows.append(pmf[c, first:last + 1])
        width = max(lengths)
        self.offsets = torch.tensor(offsets, dtype=torch.int32, device=self.offsets.device)
        self.lengths = torch.tensor(lengths, dtype=torch.int32, device=self.offsets.device)
        self.tables = torch.stack([F.pad(r, (0, width - r.numel())) for r in rows])

    def _models(self):
        import constriction

        if int(self.lengths.max()) == 0:
            raise RuntimeError("call update() after training: the coding tables are empty")
        tables = self.tables.cpu().numpy()
        for c, length in enumerate(self.lengths.tolist()):
            probabilities = tables[c, :length] / tables[c, :length].sum()
            yield constriction.stream.model.Categorical(probabilities, perfect=False)

    def compress(self, symbols: np.ndarray) -> np.ndarray:
        """Integer latents (C, H, W), clamped to each channel's table -> uint32 words."""
        import constriction

        encoder = constriction.stream.queue.RangeEncoder()
        for c, model in enumerate(self._models()):
            shifted = np.clip(symbols[c].reshape(-1) - int(self.offsets[c]), 0, int(self.lengths[c]) - 1)
            encoder.encode(shifted.astype(np.int32), model)
        return encoder.get_compressed()

    def decompress(self, words: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        import constriction

        decoder = constriction.stream.queue.RangeDecoder(words)
        out = []
        for c, model in enumerate(self._models()):
            out.append(decoder.decode(model, shape[0] * shape[1]).reshape(shape) + int(self.offsets[c]))
        return np.stack(out)

    def clamp(self, symbols: torch.Tensor) -> torch.Tensor:
        """Integer latents (..., C, H, W) limited to the coding tables' ranges."""
        low = self.offsets.reshape(-1, 1, 1).to(symbols)
        return torch.minimum(torch.maximum(symbols, low), low + self.lengths.reshape(-1, 1, 1).to(symbols) - 1)


def conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2)


def deconv(cin: int, cout: int, kernel: int, stride: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel, stride, kernel // 2, output_padding=stride - 1)


class Balle2017(nn.Module):
    """The ICLR 2017 model (Figure 1 / section 2): analysis 9x9 stride 4, 5x5 stride 2,
    5x5 stride 2 with GDN between; synthesis the mirror with inverse GDN; ``channels``
    latent maps (128 in the paper's gray and low-rate models, 192 for RGB at high rates).
    Images in [0, 1]; sides are padded to multiples of 16 by edge replication."""

    STRIDE = 16

    def __init__(self, channels: int = 128):
        super().__init__()
        n = channels
        self.analysis = nn.Sequential(conv(3, n, 9, 4), GDN(n), conv(n, n, 5, 2), GDN(n), conv(n, n, 5, 2))
        self.synthesis = nn.Sequential(deconv(n, n, 5, 2), GDN(n, inverse=True), deconv(n, n, 5, 2),
                                       GDN(n, inverse=True), deconv(n, 3, 9, 4))
        self.entropy = FactorizedEntropyModel(n)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return F.pad(x, (0, -w % self.STRIDE, 0, -h % self.STRIDE), mode="replicate")

    def forward(self, x: torch.Tensor) -> dict:
        h, w = x.shape[-2:]
        y = self.analysis(self._pad(x))
        y_hat, likelihoods = self.entropy(y)
        return {"x_hat": self.synthesis(y_hat)[..., :h, :w], "likelihoods": likelihoods}

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> bytes:
        """One image (1, 3, H, W) -> bytes: its size, then the range coder's words."""
        h, w = x.shape[-2:]
        symbols = self.entropy.clamp(torch.round(self.analysis(self._pad(x))))[0]
        words = self.entropy.compress(symbols.cpu().numpy().astype(np.int64))
        return struct.pack("<HH", h, w) + words.astype("<u4").tobytes()

    @torch.no_grad()
    def decompress(self, data: bytes) -> torch.Tensor:
        h, w = struct.unpack_from("<HH", data)
        words = np.frombuffer(data, dtype="<u4", offset=4).astype(np.uint32)
        shape = (-(-h // self.STRIDE), -(-w // self.STRIDE))
        symbols = self.entropy.decompress(words, shape)
        y_hat = torch.from_numpy(symbols).float()[None].to(self.entropy.tables.device)
        return self.synthesis(y_hat)[..., :h, :w].clamp(0, 1)


def rate_distortion_loss(output: dict, target: torch.Tensor, lmbda: float) -> dict:
    """``bpp + lmbda * 255^2 * MSE`` (images in [0, 1]), the paper's objective with its
    distortion in 8-bit units; also returns the two terms."""
    pixels = target.shape[0] * target.shape[-2] * target.shape[-1]
    bpp = -torch.log2(output["likelihoods"]).sum() / pixels
    mse = F.mse_loss(output["x_hat"], target)
    return {"loss": bpp + lmbda * 255 ** 2 * mse, "bpp": bpp, "mse": mse}
