"""Networks for DCT input: the ResNet-50 family of "Faster Neural Networks Straight from
JPEG" beside torchvision's RGB ResNet-50, built by name::

    model = nets.create_model("late_concat_rfa_thinner", num_classes=1000)
    logits = model(y, cbcr)      # the dctload.batch contract

Each builder registers itself where it is defined (``@register_model(input="dct")``);
``model_input(name)`` says what a model reads. DCT models accept ``channels="dctnet24"``
(or ``in_channels=(Cy, Cc)``) for channel subsets. JPEG-DL's learnable requantization:
``with_requantization`` (DCT input) and ``with_jpeg_layer`` (any RGB classifier);
``make_optimizers`` gives the steps their group. Models import no data loader.
"""

from __future__ import annotations

from dctload.batch import Normalize

from . import resnet_dct, resnet_rgb  # noqa: F401 - importing a model file registers its builders
from .blocks import Bottleneck
from .jpeg_dl import DCTModel, DCTRequantize, JPEGLayer, Quantizer, with_jpeg_layer, with_requantization
from .optim import make_optimizers
from .registry import create_model, is_dct_model, list_models, model_input, register_model

__all__ = [
    "Bottleneck", "DCTModel", "DCTRequantize", "JPEGLayer", "Normalize", "Quantizer", "create_model",
    "is_dct_model", "list_models", "make_optimizers", "model_input", "register_model", "with_jpeg_layer",
    "with_requantization",
]
