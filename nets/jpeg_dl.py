"""JPEG-DL's differentiable requantization (Salamah et al., ICLR 2025; reference.md section 2).

A quantizer with learnable steps, 64 for luma and 64 for chroma (Cb and Cr share), put
in front of a network: :class:`DCTRequantize` acts on the loader's dequantized DCT
coefficients, :class:`JPEGLayer` on pixels (RGB -> YCbCr -> 8x8 DCT -> quantizer ->
inverse DCT -> RGB, no chroma subsampling), as in the paper's Figure 1.

Quantization proxies (``proxy=``):

- ``"soft"``: JPEG-DL's soft quantizer. Candidates ``i_k = round(z/Q) + k`` for ``k`` in a
  centred window (5 wide), weights ``softmax_k(-alpha (i_k Q - z)^2)``, output
  ``sum_k P_k i_k Q``; gradients reach ``z`` and ``Q`` through the weights (no
  straight-through estimator). ``alpha`` is fixed (5.0, the paper's), trainable, or set by
  hardness matching ``alpha = h / Q^2`` (scale-invariant).
- ``"noise"``: additive uniform noise in training, rounding in evaluation (Balle et al. 2017).
- ``"ste"``: rounding forward, identity backward (the step's gradient is LSQ's ``round(x) - x``).
- ``"cubic"``: ``round(x) + (x - round(x))^3`` (Shin & Song 2017).

Units: coefficients are in JPEG units (``q * Q`` of the file), so requantization must
come before normalization; :func:`with_requantization` fixes that order.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dctload import batch, coefficients, pixels, writer
from dctload.pixels import IMAGENET_MEAN, IMAGENET_STD

PROXIES = ("soft", "noise", "ste", "cubic")
MIN_STEP, MAX_STEP = 1e-5, 255.0  # JPEG-DL's clamp; 255 is baseline JPEG's largest step


def _inverse_softplus(x: torch.Tensor) -> torch.Tensor:
    return x + torch.log(-torch.expm1(-x))


# ---- The proxies, as functions of coefficients z and (broadcastable) steps q ----

def soft_quantize(z, q, alpha, window: int = 5, max_index: int | None = None):
    """JPEG-DL's soft quantizer: the softmax-weighted mean of the ``window`` candidates
    around ``round(z / q)``, weights ``exp(-alpha (i q - z)^2)``."""
    center = torch.round(z / q).detach()
    offsets = torch.arange(window, device=z.device, dtype=z.dtype) - window // 2
    index = center.unsqueeze(0) + offsets.reshape(-1, *[1] * z.ndim)
    if max_index is not None:
        index = index.clamp(-max_index, max_index)
    candidates = index * q
    weights = torch.softmax(-alpha * (candidates - z) ** 2, dim=0)
    return (weights * candidates).sum(0)


def _clamped_ratio(z, q, max_index):
    x = z / q
    return x if max_index is None else x.clamp(-max_index, max_index)


def noise_quantize(z, q, training: bool, max_index: int | None = None):
    x = _clamped_ratio(z, q, max_index)
    if training:
        return q * (x + torch.rand_like(x) - 0.5)
    return q * torch.round(x)


def ste_quantize(z, q, max_index: int | None = None):
    x = _clamped_ratio(z, q, max_index)
    return q * (x + (torch.round(x) - x).detach())


def cubic_quantize(z, q, max_index: int | None = None):
    x = _clamped_ratio(z, q, max_index)
    r = torch.round(x).detach()
    return q * (r + (x - r) ** 3)


class Quantizer(nn.Module):
    """One quantization stage with 64 learnable steps, one per DCT frequency.

    Steps are positive by construction (a softplus of the parameter), clamped to
    JPEG-DL's [1e-5, 255]. ``alpha``: the soft proxy's hardness, fixed unless
    ``train_alpha``; ``hardness=h`` uses ``alpha = h / Q^2`` instead. ``max_index``
    clamps quantized indices (JPEG-DL's code uses 127); ``None`` (default) does not,
    since a DC step below 8 would otherwise clip JPEG-unit DC coefficients.
    """

    def __init__(self, steps, proxy: str = "soft", window: int = 5, alpha: float = 5.0,
                 train_alpha: bool = False, hardness: float | None = None, max_index: int | None = None):
        super().__init__()
        if proxy not in PROXIES:
            raise ValueError(f"unknown quantization proxy {proxy!r}; known: {', '.join(PROXIES)}")
        if window < 1 or window % 2 == 0:
            raise ValueError(f"the candidate window must be odd and positive, not {window}")
        if hardness is not None and train_alpha:
            raise ValueError("hardness matching sets alpha from the steps: it cannot also be trained")
        self.proxy, self.window, self.max_index, self.hardness = proxy, window, max_index, hardness
        self.raw_steps = nn.Parameter(torch.empty(64))
        self.set_steps(steps)
        raw_alpha = _inverse_softplus(torch.tensor(float(alpha)))
        if train_alpha:
            self.raw_alpha = nn.Parameter(raw_alpha)
        else:
            self.register_buffer("raw_alpha", raw_alpha)

    @property
    def steps(self) -> torch.Tensor:
        return F.softplus(self.raw_steps).clamp(MIN_STEP, MAX_STEP)

    @torch.no_grad()
    def set_steps(self, steps) -> None:
        steps = torch.as_tensor(steps, dtype=torch.float32, device=self.raw_steps.device)
        steps = steps.expand(64).clamp(MIN_STEP, MAX_STEP)
        self.raw_steps.copy_(_inverse_softplus(steps.double()).float())

    def alpha(self, q: torch.Tensor) -> torch.Tensor:
        return self.hardness / q ** 2 if self.hardness is not None else F.softplus(self.raw_alpha)

    def forward(self, z: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
        """Requantizes ``z`` (B, C, H, W) whose channel c holds frequency ``frequencies[c]``."""
        q = self.steps.index_select(0, frequencies).reshape(1, -1, 1, 1)
        if self.proxy == "soft":
            return soft_quantize(z, q, self.alpha(q), self.window, self.max_index)
        if self.proxy == "noise":
            return noise_quantize(z, q, self.training, self.max_index)
        if self.proxy == "ste":
            return ste_quantize(z, q, self.max_index)
        return cubic_quantize(z, q, self.max_index)

    def extra_repr(self) -> str:
        hardness = f"hardness={self.hardness}" if self.hardness is not None else \
            f"alpha={F.softplus(self.raw_alpha).item():.3g}{' (trained)' if isinstance(self.raw_alpha, nn.Parameter) else ''}"
        return f"proxy={self.proxy}, window={self.window}, {hardness}, max_index={self.max_index}"


class DCTRequantize(nn.Module):
    """Soft requantization of a ``(y, cbcr)`` batch in JPEG units (the loader's output,
    before normalization): 64 luma + 64 chroma steps per round, Cb and Cr sharing.

    Initial steps: ``quality`` (the standard tables, as libjpeg scales them), ``tables``
    (a (luma, chroma) pair, such as a file's own ``DCTImage.qt[:2]``), else ``step``
    everywhere (JPEG-DL's default 1); :meth:`init_from_data` for LSQ-style steps.
    ``rounds=N`` applies N quantizers in sequence, each with its own steps and hardness.
    ``channels``: the channel subset the batch carries (see ``dctload.batch``).
    Other keywords go to :class:`Quantizer`. Runs in float32 under autocast.
    """

    def __init__(self, rounds: int = 1, quality: int | None = None, tables: Sequence | None = None,
                 step: float = 1.0, channels=None, **quantizer_options):
        super().__init__()
        if rounds < 1:
            raise ValueError(f"rounds must be at least 1, not {rounds}")
        if quality is not None and tables is not None:
            raise ValueError("give quality or tables, not both")
        if quality is not None:
            tables = coefficients.standard_tables(quality)
        luma, chroma = (step, step) if tables is None else (tables[0], tables[1])
        self.rounds = nn.ModuleList(
            nn.ModuleDict({"luma": Quantizer(luma, **quantizer_options), "chroma": Quantizer(chroma, **quantizer_options)})
            for _ in range(rounds))
        luma_channels, chroma_channels = batch.channel_indices(channels if channels is not None else "all")
        self.register_buffer("luma_frequencies", luma_channels, persistent=False)
        self.register_buffer("chroma_frequencies", chroma_channels % 64, persistent=False)

    @torch.no_grad()
    def init_from_data(self, y: torch.Tensor, cbcr: torch.Tensor, bits: int = 8) -> None:
        """LSQ-style steps from a batch: ``Q0 = 2 E|z| / sqrt(2^(bits-1))`` per frequency
        (JPEG-DL's ImageNet initialisation); frequencies the batch lacks keep theirs."""
        scale = 2.0 / (2.0 ** (bits - 1)) ** 0.5
        for quantizer_name, z, frequencies in (("luma", y, self.luma_frequencies), ("chroma", cbcr, self.chroma_frequencies)):
            mean_abs = z.detach().float().abs().mean(dim=(0, 2, 3))
            for quantizers in self.rounds:
                quantizer = quantizers[quantizer_name]
                steps = quantizer.steps.clone()
                sums = torch.zeros(64, device=z.device).index_add_(0, frequencies, mean_abs)
                counts = torch.zeros(64, device=z.device).index_add_(0, frequencies, torch.ones_like(mean_abs))
                present = counts > 0
                steps[present] = (scale * sums[present] / counts[present]).to(steps)
                quantizer.set_steps(steps)

    def steps(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The current (luma, chroma) steps of each round, natural order."""
        return [(r["luma"].steps.detach(), r["chroma"].steps.detach()) for r in self.rounds]

    def save_tables(self, path, round: int = 0) -> None:
        """Saves one round's steps, rounded to integers, for ``dctload prepare --tables``
        and :func:`dctload.writer.load_tables`: a dataset quantized with the learned table."""
        writer.save_tables(path, *self.steps()[round])

    def forward(self, y: torch.Tensor, cbcr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for name, z, frequencies in (("y", y, self.luma_frequencies), ("cbcr", cbcr, self.chroma_frequencies)):
            if z.ndim != 4 or z.shape[1] != len(frequencies):
                raise ValueError(f"{name} {tuple(z.shape)}: expected (B, {len(frequencies)}, H, W) for this channel subset")
        with torch.autocast(y.device.type, enabled=False):
            y, cbcr = y.float(), cbcr.float()
            for quantizers in self.rounds:
                y = quantizers["luma"](y, self.luma_frequencies)
                cbcr = quantizers["chroma"](cbcr, self.chroma_frequencies)
        return y, cbcr


class JPEGLayer(nn.Module):
    """JPEG-DL's JPEG layer for pixel input: normalized RGB -> YCbCr -> 8x8 DCT ->
    :class:`DCTRequantize` -> inverse DCT -> RGB -> normalized again (paper section 3).

    ``mean``/``std``: the input's normalization (torchvision's ImageNet values by
    default; ``None`` for RGB in [0, 1]). Sides that are not multiples of 8 are padded
    by edge replication, as encoders do, and cropped back. Other keywords go to
    :class:`DCTRequantize` (quality, tables, rounds, proxy, alpha, ...).
    """

    def __init__(self, mean: Sequence[float] | None = IMAGENET_MEAN, std: Sequence[float] | None = IMAGENET_STD,
                 **requantize_options):
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        if "channels" in requantize_options:
            raise ValueError("the pixel JPEG layer quantizes every frequency: channels is for DCT input")
        self.requantize = DCTRequantize(**requantize_options)
        self.register_buffer("mean", torch.tensor(mean or (0.0,) * 3).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std or (1.0,) * 3).reshape(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        with torch.autocast(images.device.type, enabled=False):
            rgb = (images.float() * self.std + self.mean) * 255.0
            rgb = F.pad(rgb, (0, -w % 8, 0, -h % 8), mode="replicate")
            coefs = pixels.to_coefficients(coefficients.rgb_to_ycbcr(rgb, axis=-3))  # (n, 3, 64, hb, wb)
            hb, wb = coefs.shape[-2:]
            y, cbcr = self.requantize(coefs[:, 0], coefs[:, 1:].reshape(n, 128, hb, wb))
            coefs = torch.cat([y.unsqueeze(1), cbcr.reshape(n, 2, 64, hb, wb)], dim=1)
            rgb = coefficients.ycbcr_to_rgb(pixels.from_coefficients(coefs), axis=-3)[..., :h, :w]
            return (rgb / 255.0 - self.mean) / self.std


class DCTModel(nn.Module):
    """A DCT network with its input steps in their only valid order: requantize
    (optional, JPEG units in), then normalize, then the network. Feed it the loader's
    batches in JPEG units (no ``Normalize`` in the transform)."""

    def __init__(self, network: nn.Module, normalize: nn.Module | None = None, requantize: DCTRequantize | None = None):
        super().__init__()
        self.requantize, self.normalize, self.network = requantize, normalize, network
        self._units_checked = False

    def forward(self, y: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
        if self.requantize is not None:
            if not self._units_checked and not torch.compiler.is_compiling():
                self._units_checked = True
                _warn_if_normalized(y)
            y, cbcr = self.requantize(y, cbcr)
        if self.normalize is not None:
            y, cbcr = self.normalize(y, cbcr)
        return self.network(y, cbcr)


def _warn_if_normalized(y: torch.Tensor) -> None:
    # JPEG-unit DC is 8x the block mean minus 1024: a batch of natural images spans
    # hundreds. Eight images all within one grey level of mid-grey look normalized.
    if y.shape[0] >= 8 and y.shape[1] == 64 and float(y[:, 0].detach().abs().amax()) < 8.0:
        warnings.warn("the DC coefficients of this batch are all within +-8: they look normalized, but "
                      "requantization needs JPEG units; drop Normalize from the loader's transform and "
                      "pass the statistics to with_requantization(normalize=...)", stacklevel=3)


def with_requantization(network: nn.Module, normalize: nn.Module | None = None, **requantize_options) -> DCTModel:
    """``network`` (a DCT model) behind a :class:`DCTRequantize` and then ``normalize``
    (a :class:`dctload.batch.Normalize`, also ``nets.Normalize``; the loader must then
    not normalize)."""
    return DCTModel(network, normalize, DCTRequantize(**requantize_options))


def with_jpeg_layer(model: nn.Module, **layer_options) -> nn.Sequential:
    """Any torchvision classifier behind a :class:`JPEGLayer` (JPEG-DL's setting)."""
    return nn.Sequential(OrderedDict(jpeg=JPEGLayer(**layer_options), network=model))


def quantization_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of every :class:`Quantizer` in ``model`` (steps, trained alphas)."""
    return [p for m in model.modules() if isinstance(m, Quantizer) for p in m.parameters(recurse=False)]
