"""The ResNet-50 variants of "Faster Neural Networks Straight from JPEG" (Gueguen et al.,
NeurIPS 2018), after the authors' layer diagrams (``../shared/docs/paper-diagrams/``,
summarised in ``../shared/docs/reference.md`` section 1).

Input: the batch contract of :mod:`dctload.batch`, ``y`` (B, Cy, S/8, S/8) and ``cbcr``
(B, Cc, S/16, S/16), Cc even (Cb's channels, then Cr's); Cy = 64 and Cc = 128 unless a
channel subset is used (``in_channels=(Cy, Cc)``).

``width`` scales every stage's channels (1.0: the paper's; smaller for quick experiments).

Open points, settled here (the diagrams omit BatchNorm):
- BatchNorm on the raw inputs: one BN after the concatenation for UpSampling and
  Deconvolution (one tensor enters the network); one BN per input stream for the
  DownSampling and Late-Concat families (the streams meet later, at different scales).
- DownSampling concatenates 256 + 64 + 64 = 384 channels, as its diagram shows (the text's
  192 would need a 64-channel luma convolution).
- The even 2x2 kernels (RFA blocks with k=2, DownSampling's luma conv is strided and
  needs none) pad one row and column at the bottom/right, as Keras' "same" padding does.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Bottleneck, conv_bn, named, stage
from .registry import register_model

RES3 = (128, 512)
RES4 = (256, 1024)
RES5 = (512, 2048)
RFA = (1, 2, 3)  # the middle kernels of the receptive-field-aware blocks


def scaled(widths: tuple[int, ...], width: float) -> tuple[int, ...]:
    """Stage widths times ``width`` (for small experiments), multiples of 8."""
    return tuple(max(8, int(round(c * width / 8)) * 8) for c in widths)


class DCTResNet(nn.Module):
    """``luma(y)`` and ``chroma(cbcr)`` concatenated, then ``trunk``, pooling and the classifier."""

    def __init__(self, luma: nn.Module, chroma: nn.Module, trunk: nn.Sequential, features: int,
                 num_classes: int = 1000, zero_init_residual: bool = False):
        super().__init__()
        self.luma, self.chroma, self.trunk = luma, chroma, trunk
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(features, num_classes)
        initialize(self, zero_init_residual)

    def forward(self, y: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
        x = self.trunk(torch.cat([self.luma(y), self.chroma(cbcr)], dim=1))
        return self.fc(torch.flatten(self.pool(x), 1))


def initialize(model: nn.Module, zero_init_residual: bool = False) -> None:
    """torchvision's ResNet initialisation: Kaiming (fan-out) convolutions, BN at 1/0, and
    optionally each bottleneck's last BN at 0 (Goyal et al.), so blocks start as identities."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.last_bn.weight)


def _upsampled_trunk(channels: int, rfa: bool, width: float) -> nn.Sequential:
    """BN on the merged 28x28 input, [RFA blocks,] res3 at stride 1, standard res4, res5."""
    res3, res4, res5 = (scaled(w, width) for w in (RES3, RES4, RES5))
    layers = [("bn", nn.BatchNorm2d(channels))]
    if rfa:
        layers.append(("rfa", stage(channels, res4, 3, kernels=RFA)))
        channels = res4[1]
    layers += [
        ("layer3", stage(channels, res3, 4, stride=1)),
        ("layer4", stage(res3[1], res4, 6, stride=2)),
        ("layer5", stage(res4[1], res5, 3, stride=2)),
    ]
    return named(*layers)


@register_model(input="dct")
def upsampling(num_classes=1000, in_channels=(64, 128), zero_init_residual=False, width=1.0) -> DCTResNet:
    """UpSampling (diagram ResNet50-Upsampling): concat(Y, up2(Cb), up2(Cr)) -> BN; stages
    1-2 removed; res3 x4 at stride 1 on 28x28, res4 x6, res5 x3."""
    cy, cc = in_channels
    return DCTResNet(nn.Identity(), nn.Upsample(scale_factor=2, mode="nearest"), _upsampled_trunk(cy + cc, False, width),
                     scaled(RES5, width)[1], num_classes, zero_init_residual)


@register_model(input="dct")
def upsampling_rfa(num_classes=1000, in_channels=(64, 128), zero_init_residual=False, width=1.0) -> DCTResNet:
    """UpSampling-RFA (diagram ResNet50-UpSampling-RFA): as UpSampling with three
    [256,256,1024] blocks of middle kernels 1, 2, 3 at stride 1 before res3."""
    cy, cc = in_channels
    return DCTResNet(nn.Identity(), nn.Upsample(scale_factor=2, mode="nearest"), _upsampled_trunk(cy + cc, True, width),
                     scaled(RES5, width)[1], num_classes, zero_init_residual)


@register_model(input="dct")
def deconvolution_rfa(num_classes=1000, in_channels=(64, 128), zero_init_residual=False, width=1.0) -> DCTResNet:
    """Deconvolution-RFA (diagram ResNet50-Deconvolution-RFA): as UpSampling-RFA, chroma
    brought to 28x28 by a learned 2x2/2 transposed convolution per plane (grouped: Cb and
    Cr each their own 64 -> 64 filters)."""
    cy, cc = in_channels
    deconv = nn.ConvTranspose2d(cc, cc, kernel_size=2, stride=2, groups=2, bias=False)
    return DCTResNet(nn.Identity(), deconv, _upsampled_trunk(cy + cc, True, width), scaled(RES5, width)[1],
                     num_classes, zero_init_residual)


@register_model(input="dct")
def downsampling(num_classes=1000, in_channels=(64, 128), zero_init_residual=False, width=1.0) -> DCTResNet:
    """DownSampling (diagram ResNet50-DownSampling): Y -> 2x2/2 conv -> 14x14x256, concat
    with the raw Cb, Cr -> 14x14x384; RFA blocks k=1,2,3 and res3 x4 and res4 x6 at
    stride 1 on 14x14; res5 x3 to 7x7."""
    cy, cc = in_channels
    (down,), res3, res4, res5 = (scaled(w, width) for w in ((256,), RES3, RES4, RES5))
    luma = named(("bn", nn.BatchNorm2d(cy)), ("down", nn.Sequential(*conv_bn(cy, down, 2, 2), nn.ReLU(inplace=True))))
    trunk = named(
        ("rfa", stage(down + cc, res4, 3, kernels=RFA)),
        ("layer3", stage(res4[1], res3, 4, stride=1)),
        ("layer4", stage(res3[1], res4, 6, stride=1)),
        ("layer5", stage(res4[1], res5, 3, stride=2)),
    )
    return DCTResNet(luma, nn.BatchNorm2d(cc), trunk, res5[1], num_classes, zero_init_residual)


def _late_concat(in_channels, luma_rfa, luma_widths, res4a, chroma_widths, res4_widths, num_classes,
                 zero_init_residual, width) -> DCTResNet:
    """The Late-Concat family: luma through [RFA blocks,] res3 x4 and a stride-2 res4a to
    14x14; chroma through one k=1 block; concatenated to 1024 channels, res4b-f, res5."""
    cy, cc = in_channels
    luma_rfa = luma_rfa and scaled(luma_rfa, width)
    luma_widths, res4a, chroma_widths, res4_widths, res5 = (
        scaled(w, width) for w in (luma_widths, res4a, chroma_widths, res4_widths, RES5))
    luma = [("bn", nn.BatchNorm2d(cy))]
    channels = cy
    if luma_rfa:
        luma.append(("rfa", stage(cy, luma_rfa, 3, kernels=RFA)))
        channels = luma_rfa[1]
    luma += [("layer3", stage(channels, luma_widths, 4)), ("layer4a", stage(luma_widths[1], res4a, 1, stride=2))]
    chroma = named(("bn", nn.BatchNorm2d(cc)), ("block", stage(cc, chroma_widths, 1, kernels=[1])))
    merged = res4a[1] + chroma_widths[1]
    trunk = named(("layer4", stage(merged, res4_widths, 5)), ("layer5", stage(res4_widths[1], res5, 3, stride=2)))
    return DCTResNet(named(*luma), chroma, trunk, res5[1], num_classes, zero_init_residual)


@register_model(input="dct")
def late_concat(num_classes=1000, in_channels=(64, 128), zero_init_residual=False, width=1.0) -> DCTResNet:
    """Late-Concat (diagram ResNet50-Late-Concat): Y: res3 x4 [128,128,512] at stride 1,
    res4a [256,256,512] stride 2; Cb, Cr: [256,256 (k=1),512]; concat 14x14x1024, res4b-f, res5."""
    return _late_concat(in_channels, None, RES3, (256, 512), (256, 512), RES4, num_classes, zero_init_residual,
                        width)


@register_model(input="dct")
def late_concat_rfa(num_classes=1000, in_channels=(64, 128), zero_init_residual=False, width=1.0) -> DCTResNet:
    """Late-Concat-RFA (diagram ResNet50-Late-Concat-RFA): Late-Concat with three
    [256,256,1024] luma blocks of middle kernels 1, 2, 3 first."""
    return _late_concat(in_channels, RES4, RES3, (256, 512), (256, 512), RES4, num_classes, zero_init_residual,
                        width)


@register_model(input="dct")
def late_concat_rfa_thinner(num_classes=1000, in_channels=(64, 128), zero_init_residual=False, width=1.0) -> DCTResNet:
    """Late-Concat-RFA-Thinner (diagram ResNet50-Late-Concat-RFA-Thinner): Y: [96,96,384]
    x3 (k=1,2,3), [96,96,384] x4, res4a [192,192,768] stride 2; Cb, Cr: [128,128 (k=1),256];
    concat 14x14x1024, res4b-f [256,256,1024], res5 [512,512,2048]. The paper's 1.77x model."""
    return _late_concat(in_channels, (96, 384), (96, 384), (192, 768), (128, 256), RES4, num_classes,
                        zero_init_residual, width)
