"""dctload: frequency-domain data loading for PyTorch.

Reads the quantized DCT coefficients (Y, Cb, Cr) of JPEG files without decoding them
to pixels, augments them exactly in the DCT domain (``dctload.transforms``) and
batches them for networks that take coefficients as input (``dctload.batch``).
"""

from .errors import JPEGError, UnsupportedJPEGError
from .reader import DEFAULT_MAX_PIXELS, DCTImage, read_batch, read_coefficients, read_header

__version__ = "0.1.0"

__all__ = [
    "DCTImage",
    "DCTImageFolder",
    "DEFAULT_MAX_PIXELS",
    "JPEGError",
    "UnsupportedJPEGError",
    "collate",
    "read_batch",
    "read_coefficients",
    "read_header",
]


def __getattr__(name):
    # The dataset and batching need torch; the reader does not.
    if name == "DCTImageFolder":
        from .folder import DCTImageFolder

        return DCTImageFolder
    if name == "collate":
        from .batch import collate

        return collate
    raise AttributeError(f"module 'dctload' has no attribute {name!r}")
