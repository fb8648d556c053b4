"""Synthetic JPEG folders: the built-in default data set (ImageNet-like JPEGs made from
photos scikit-image ships) and procedural shapes a network learns in minutes.

Real ImageNet (``../shared/data/README.md``) is mostly 4:4:4 at IJG quality 96 (76%),
about a fifth 4:2:0 at quality 69-99, a few grayscale, median 500x375 with partial edge
blocks. This module encodes crops of scikit-image's bundled photographs the same way,
deterministically, into an ImageFolder layout (one class folder per source photo), so
benchmarks and examples run on a fresh machine without downloading anything.
"""

from __future__ import annotations

import io
import os
import pathlib
import shutil
import tempfile

import numpy as np

#: Photographs bundled in the scikit-image wheel (``skimage/data``), one class each.
SOURCE_PHOTOS = (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
    "motorcycle_left.png", "hubble_deep_field.jpg", "retina.jpg", "ihc.png",
)
#: Output sizes (width, height) and how often each is drawn.
SIZES = (((500, 375), 0.45), ((375, 500), 0.2), ((500, 333), 0.15), ((333, 500), 0.1), ((640, 480), 0.1))
VERSION = 1


def cache_dir() -> pathlib.Path:
    """Where generated data sets live: ``$DCTLOAD_CACHE`` or ``~/.cache/dctload``."""
    return pathlib.Path(os.environ.get("DCTLOAD_CACHE", pathlib.Path.home() / ".cache" / "dctload"))


def encoding_plan(rng: np.random.Generator) -> dict:
    """Pillow save options for one file, drawn with ImageNet's proportions."""
    draw = rng.random()
    if draw < 0.76:
        return {"quality": 96, "subsampling": 0}
    if draw < 0.97:
        return {"quality": int(rng.integers(75, 91)), "subsampling": 2}
    if draw < 0.98:
        return {"quality": 90, "subsampling": 1}
    return {"quality": 90, "subsampling": 0, "grayscale": True}


def _load_photos():
    from importlib import resources

    from PIL import Image

    photos = {}
    for name in SOURCE_PHOTOS:
        with (resources.files("skimage.data") / name).open("rb") as f:
            photos[pathlib.Path(name).stem] = Image.open(f).convert("RGB")
    return photos


def _random_view(photo, size, rng: np.random.Generator):
    """A random crop of ``photo`` with the output's aspect ratio, resized to ``size``."""
    from PIL import Image

    width, height = size
    aspect = width / height
    scale = rng.uniform(0.4, 1.0)
    crop_w = min(photo.width, int(round(np.sqrt(scale * photo.width * photo.height * aspect))))
    crop_h = min(photo.height, int(round(crop_w / aspect)))
    crop_w = min(crop_w, int(round(crop_h * aspect)))
    left = int(rng.integers(0, photo.width - crop_w + 1))
    top = int(rng.integers(0, photo.height - crop_h + 1))
    view = photo.crop((left, top, left + crop_w, top + crop_h)).resize(size, Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return view


def _save_jpeg(image, path: pathlib.Path, rng: np.random.Generator) -> None:
    """Saves with one draw of :func:`encoding_plan` (ImageNet's qualities and samplings)."""
    plan = encoding_plan(rng)
    if plan.pop("grayscale", False):
        image = image.convert("L")
    out = io.BytesIO()
    image.save(out, "JPEG", **plan)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.getvalue())


def generate(root: str | os.PathLike, num_images: int = 300, seed: int = 0) -> pathlib.Path:
    """Writes ``num_images`` JPEGs under ``root/<photo>/<index>.JPEG`` and returns ``root``."""
    rng = np.random.default_rng(seed)
    photos = _load_photos()
    names = sorted(photos)
    root = pathlib.Path(root)
    sizes, weights = zip(*SIZES)
    for i in range(num_images):
        label = names[i % len(names)]
        size = sizes[rng.choice(len(sizes), p=weights)]
        _save_jpeg(_random_view(photos[label], size, rng), root / label / f"{i:05d}.JPEG", rng)
    return root


# ---- Procedural shapes: a labelled folder that a network can learn in minutes ----

#: Classes of :func:`make_shapes`, each a shape or texture in random colours.
SHAPE_CLASSES = ("disc", "stripes", "checker", "gradient", "square", "ring", "cross", "blobs")


def _shape_image(kind: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """One (height, width, 3) uint8 image of ``kind``: random colours, placement, scale, noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    side = min(height, width)
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
    radius = rng.uniform(0.2, 0.4) * side
    angle = rng.uniform(0, np.pi)
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    period = rng.uniform(0.12, 0.3) * side
    if kind == "disc":
        mask = np.hypot(u, v) < radius
    elif kind == "square":
        mask = np.maximum(np.abs(u), np.abs(v)) < radius * 0.85
    elif kind == "stripes":
        mask = np.sin(2 * np.pi * u / period) > 0
    elif kind == "checker":
        mask = (np.sin(2 * np.pi * u / period) > 0) ^ (np.sin(2 * np.pi * v / period) > 0)
    elif kind == "ring":
        mask = np.abs(np.hypot(u, v) - radius) < radius * 0.3
    elif kind == "cross":
        mask = (np.minimum(np.abs(u), np.abs(v)) < radius * 0.3) & (np.maximum(np.abs(u), np.abs(v)) < radius)
    elif kind == "blobs":
        field = sum(np.sin(2 * np.pi * (xx * a + yy * b) / side + c)
                    for a, b, c in rng.uniform([-3, -3, 0], [3, 3, 2 * np.pi], (4, 3)))
        mask = field > 0
    elif kind == "gradient":
        mask = np.clip(u / side + 0.5, 0, 1)
    else:
        raise ValueError(f"unknown shape class {kind!r}; known: {SHAPE_CLASSES}")
    foreground, background = rng.uniform(0, 255, (2, 3))
    while np.abs(foreground - background).sum() < 120:  # enough contrast to see the shape
        foreground, background = rng.uniform(0, 255, (2, 3))
    mask = np.asarray(mask, dtype=np.float64)[..., None]
    image = mask * foreground + (1 - mask) * background + rng.normal(0, 8, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def make_shapes(root: str | os.PathLike, num_classes: int = 4, train_per_class: int = 150, val_per_class: int = 50,
                sizes: tuple[int, int] = (64, 160), seed: int = 0) -> pathlib.Path:
    """Writes ``root/train/<class>/*.JPEG`` and ``root/val/<class>/*.JPEG``: the first
    ``num_classes`` of :data:`SHAPE_CLASSES`, sides drawn from ``sizes`` (partial edge
    blocks included), encoded with ImageNet's mix of qualities and chroma samplings."""
    from PIL import Image

    if not 2 <= num_classes <= len(SHAPE_CLASSES):
        raise ValueError(f"num_classes must be within 2..{len(SHAPE_CLASSES)}, not {num_classes}")
    rng = np.random.default_rng(seed)
    root = pathlib.Path(root)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for i in range(count):
            for kind in SHAPE_CLASSES[:num_classes]:
                height, width = rng.integers(sizes[0], sizes[1] + 1, 2)
                image = Image.fromarray(_shape_image(kind, int(height), int(width), rng))
                _save_jpeg(image, root / split / kind / f"{i:05d}.JPEG", rng)
    return root


def default_dataset(num_images: int = 300) -> pathlib.Path:
    """The default data set's folder, generated on first use (a few seconds) and cached."""
    root = cache_dir() / f"default-v{VERSION}-{num_images}"
    if (root / "COMPLETE").exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".default-", dir=root.parent))
    try:
        generate(staging, num_images)
        (staging / "COMPLETE").write_text(f"{num_images} images, generator version {VERSION}\n")
        try:
            staging.rename(root)
        except OSError:  # another process finished first
            if not (root / "COMPLETE").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def main(argv=None) -> int:
    """``dctload make-shapes ROOT``: writes :func:`make_shapes`'s folder and prints it."""
    import argparse

    parser = argparse.ArgumentParser(prog="dctload make-shapes", description=make_shapes.__doc__.split("\n")[0])
    parser.add_argument("root")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--train-per-class", type=int, default=150)
    parser.add_argument("--val-per-class", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    print(make_shapes(options.root, options.classes, options.train_per_class, options.val_per_class,
                      seed=options.seed))
    return 0
