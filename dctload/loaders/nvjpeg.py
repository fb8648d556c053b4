"""Backend ``"nvjpeg"``: pixels decoded on the GPU, then converted to the batch contract.

DataLoader workers read the files and draw the recipe from each header
(:meth:`dctload.Recipe.draw`); the device decodes the batch with torchvision's nvJPEG
(``decode_jpeg(device="cuda")``), applies the draws (:meth:`dctload.Recipe.on_pixels`) and
takes YCbCr, 4:2:0 chroma and the blockwise DCT (:func:`dctload.pixels.pixels_to_batch`).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torchvision
from torch.utils.data import Dataset

from ..errors import JPEGError
from ..pixels import pixels_to_batch
from ..reader import DEFAULT_MAX_PIXELS, read_header
from ..recipe import Recipe
from . import Loader
from .exact_gpu import gpu_batches


class EncodedJPEGs(Dataset):
    """``(path, target)`` samples -> ``((bytes, box, flips, path), target)`` for GPU
    decoders, the recipe's draws made from the header only (:func:`dctload.read_header`).
    Unreadable headers raise ``JPEGError`` naming the file."""

    def __init__(self, samples: Sequence[tuple[str, int]], recipe: Recipe):
        self.samples, self.recipe = list(samples), recipe

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        with open(path, "rb") as f:
            encoded = f.read()
        try:
            header = read_header(encoded)
        except JPEGError as exc:
            raise type(exc)(exc.reason, source=path, code=exc.code) from None
        if header["width"] * header["height"] > DEFAULT_MAX_PIXELS:  # the reader's limit, before nvJPEG allocates
            raise JPEGError(f"{header['width']}x{header['height']} pixels is more than the limit of "
                            f"{DEFAULT_MAX_PIXELS}", source=path, code="too_large")
        box, flips = self.recipe.draw(header["height"], header["width"])
        data = torch.frombuffer(bytearray(encoded), dtype=torch.uint8)
        return (data, torch.tensor(box), torch.tensor(flips), path), target


def collate_encoded(samples: Sequence) -> tuple:
    data = [s[0][0] for s in samples]
    boxes = torch.stack([s[0][1] for s in samples])
    flips = torch.stack([s[0][2] for s in samples])
    paths = [s[0][3] for s in samples]
    return (data, boxes, flips, paths), torch.utils.data.default_collate([s[1] for s in samples])


def decode_on_gpu(data: Sequence[torch.Tensor], paths: Sequence[str], device) -> list[torch.Tensor]:
    """Batched nvJPEG decoding to RGB; a file nvJPEG refuses (CMYK, say) is decoded on the
    CPU instead, and one neither can decode raises ``JPEGError`` naming it."""
    mode = torchvision.io.ImageReadMode.RGB
    try:
        return torchvision.io.decode_jpeg(list(data), mode=mode, device=device)
    except RuntimeError:
        pass
    images = []
    for encoded, path in zip(data, paths):
        try:
            images.append(torchvision.io.decode_jpeg(encoded, mode=mode, device=device))
        except RuntimeError:
            try:
                images.append(torchvision.io.decode_jpeg(encoded, mode=mode).to(device))
            except RuntimeError as exc:
                raise JPEGError(str(exc), source=path, code="decode_failed") from None
    return images


class NvJPEGLoader(Loader):
    """``dataloader``: the DataLoader of encoded files and draws."""

    def __init__(self, backend, recipe, samples, classes, options):
        super().__init__(backend, recipe, samples, classes, options)
        if options.on_error != "raise":
            raise ValueError("the nvjpeg backend raises on bad files (on_error='raise')")
        self.dataset = EncodedJPEGs(samples, recipe)
        self.dataloader, self.shuffle = gpu_batches(self.dataset, collate_encoded, recipe, options)

    def batches(self):
        for (data, boxes, flips, paths), targets in self.dataloader:
            images = decode_on_gpu(data, paths, self.device)
            pixels = torch.stack([self.recipe.on_pixels(image, box, drawn)
                                  for image, box, drawn in zip(images, boxes.tolist(), flips.tolist())])
            yield pixels_to_batch(pixels), targets.to(self.device, non_blocking=True)
