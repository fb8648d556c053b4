"""dctload: frequency-domain data loading for PyTorch.

Reads the quantized DCT coefficients (Y, Cb, Cr) of JPEG files without decoding them
to pixels, augments them exactly in the DCT domain (``dctload.transforms``) and
batches them for networks that take coefficients as input (``dctload.batch``).
``dctload.loader(folder, backend=..., recipe=dctload.Recipe(...))`` gives training and
validation batches on the CPU or a GPU (``dctload.loaders``).
"""

from .errors import JPEGError, UnsupportedJPEGError
from .reader import DEFAULT_MAX_PIXELS, DCTImage, read_batch, read_coefficients, read_header
from .writer import requantize, write_coefficients

__version__ = "0.2.0"

__all__ = [
    "BACKENDS",
    "DCTFiles",
    "DCTImage",
    "DCTImageFolder",
    "DEFAULT_MAX_PIXELS",
    "JPEGError",
    "Recipe",
    "UnsupportedJPEGError",
    "collate",
    "loader",
    "read_batch",
    "read_coefficients",
    "read_header",
    "requantize",
    "write_coefficients",
]

# The dataset, the loaders and batching need torch; the reader does not: they load on first use.
_LAZY = {"DCTImageFolder": "folder", "DCTFiles": "folder", "collate": "batch", "Recipe": "recipe",
         "loader": "loaders", "BACKENDS": "loaders"}
_SUBMODULES = {"batch", "coefficients", "folder", "fused", "loaders", "packets", "packet_resampling", "pixels", "prepare",
               "recipe", "stats", "synthetic", "transforms"}


def __getattr__(name):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'dctload' has no attribute {name!r}")
