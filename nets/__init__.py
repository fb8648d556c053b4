"""Networks for DCT input: the ResNet-50 family of "Faster Neural Networks Straight from
JPEG" beside torchvision's RGB ResNet-50, built by name::

    model = nets.create_model("late_concat_rfa_thinner", num_classes=1000)
    logits = model(y, cbcr)      # the dctload.batch contract

DCT models accept ``channels="dctnet24"`` (or ``in_channels=(Cy, Cc)``) for channel subsets.
JPEG-DL's learnable requantization: ``with_requantization`` (DCT input) and
``with_jpeg_layer`` (any RGB classifier); ``make_optimizers`` gives the steps their group.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from . import resnet_dct
from .blocks import Bottleneck, Normalize
from .jpeg_dl import DCTModel, DCTRequantize, JPEGLayer, Quantizer, with_jpeg_layer, with_requantization
from .optim import make_optimizers

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module], name: str | None = None) -> Callable[..., nn.Module]:
    _REGISTRY[name or fn.__name__] = fn
    return fn


def resnet50(num_classes: int = 1000, zero_init_residual: bool = False, width: float = 1.0, **kwargs) -> nn.Module:
    """torchvision's RGB ResNet-50 (v1.5: stride on the 3x3 conv), the baseline. ``width``
    other than 1 scales every stage (torchvision's blocks, for quick experiments)."""
    import torchvision
    from torchvision.models.resnet import Bottleneck as TorchvisionBottleneck

    model = torchvision.models.resnet50(num_classes=num_classes, zero_init_residual=zero_init_residual, **kwargs)
    if width == 1.0:
        return model
    stem = resnet_dct.scaled((64,), width)[0]
    model.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(stem)
    model.inplanes = stem
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
        layer = model._make_layer(TorchvisionBottleneck, resnet_dct.scaled((planes,), width)[0], blocks,
                                  stride=1 if i == 0 else 2)
        setattr(model, f"layer{i + 1}", layer)
    model.fc = nn.Linear(model.inplanes, num_classes)
    resnet_dct.initialize(model)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, TorchvisionBottleneck):
                nn.init.zeros_(m.bn3.weight)
    return model


for _fn in (resnet_dct.upsampling, resnet_dct.upsampling_rfa, resnet_dct.deconvolution_rfa, resnet_dct.downsampling,
            resnet_dct.late_concat, resnet_dct.late_concat_rfa, resnet_dct.late_concat_rfa_thinner):
    register_model(_fn)
register_model(resnet50)


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def is_dct_model(name: str) -> bool:
    return name != "resnet50" and name in _REGISTRY


def create_model(name: str, num_classes: int = 1000, channels: str | tuple | None = None, **kwargs) -> nn.Module:
    """A model by registry name. ``channels``: a channel subset (preset name or (luma,
    chroma) frequency lists, see ``dctload.batch.channel_indices``) for DCT models."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    if channels is not None:
        if not is_dct_model(name):
            raise ValueError(f"{name} takes RGB input: channel subsets are for DCT models")
        from dctload.batch import channel_indices

        luma, chroma = channel_indices(channels)
        kwargs["in_channels"] = (len(luma), len(chroma))
    return _REGISTRY[name](num_classes=num_classes, **kwargs)


__all__ = ["Bottleneck", "Normalize", "create_model", "is_dct_model", "list_models", "register_model"]
