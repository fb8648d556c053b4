"""torchvision's RGB ResNet-50, the baseline the DCT variants are measured against."""

from __future__ import annotations

from torch import nn

from .registry import register_model
from .resnet_dct import initialize, scaled


@register_model(input="rgb")
def resnet50(num_classes: int = 1000, zero_init_residual: bool = False, width: float = 1.0, **kwargs) -> nn.Module:
    """torchvision's RGB ResNet-50 (v1.5: stride on the 3x3 conv), the baseline. ``width``
    other than 1 scales every stage (torchvision's blocks, for quick experiments)."""
    import torchvision
    from torchvision.models.resnet import Bottleneck as TorchvisionBottleneck

    model = torchvision.models.resnet50(num_classes=num_classes, zero_init_residual=zero_init_residual, **kwargs)
    if width == 1.0:
        return model
    stem = scaled((64,), width)[0]
    model.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(stem)
    model.inplanes = stem
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
        layer = model._make_layer(TorchvisionBottleneck, scaled((planes,), width)[0], blocks,
                                  stride=1 if i == 0 else 2)
        setattr(model, f"layer{i + 1}", layer)
    model.fc = nn.Linear(model.inplanes, num_classes)
    initialize(model)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, TorchvisionBottleneck):
                nn.init.zeros_(m.bn3.weight)
    return model
