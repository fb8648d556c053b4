"""dctload: frequency-domain data loading for PyTorch.

Reads the quantized DCT coefficients (Y, Cb, Cr) of JPEG files without
decoding them to pixels, for networks that take coefficients as input.
"""

from .errors import JPEGError, UnsupportedJPEGError
from .reader import DEFAULT_MAX_PIXELS, DCTImage, read_batch, read_coefficients, read_header

__version__ = "0.1.0"

__all__ = [
    "DCTImage",
    "DEFAULT_MAX_PIXELS",
    "JPEGError",
    "UnsupportedJPEGError",
    "read_batch",
    "read_coefficients",
    "read_header",
]
