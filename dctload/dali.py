"""NVIDIA DALI pipelines that yield the batch contract (:mod:`dctload.batch`).

DALI has no operator that outputs DCT coefficients, so dctload bridges:

- :func:`pixel_pipeline`: DALI reads and decodes (nvJPEG, ``device="mixed"``; or its CPU
  decoder when ``device_id=None``), crops, resizes and mirrors as torchvision's recipes
  do, and hands RGB to :func:`dctload.gpu.pixels_to_batch` (or, ``output="rgb"``, the
  normalized RGB batch of an RGB network: the baseline).
- :func:`hybrid_pipeline`: a parallel ``fn.external_source`` fed by dctload's C reader
  (entropy decoding in DALI's Python worker processes, no pixels) with the CPU loader's
  recipe; DALI pads and moves the blocks, and :func:`dctload.gpu.resample_packets`
  resamples them exactly on the GPU.

:class:`DALILoader` wraps either behind the DataLoader's interface. Install DALI with
``pip install dctload[dali]``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Sequence

import numpy as np
import torch

from . import batch, gpu
from .pixels import IMAGENET_MEAN, IMAGENET_STD
from .transforms import imagenet, resize_size


def _dali():
    try:
        import nvidia.dali as dali
        import nvidia.dali.plugin.pytorch  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"NVIDIA DALI is not installed ({exc}): `pip install dctload[dali]` (nvidia-dali-cuda120), "
            "or use dctload.gpu.GPULoader (backend 'coefficients' or 'nvjpeg'), which needs only torch"
        ) from None
    return dali


def pixel_pipeline(files: Sequence[str], labels: Sequence[int], train: bool, size: int = 224,
                   output: str = "dct", batch_size: int = 64, num_threads: int = 4, device_id: int | None = 0,
                   shard_id: int = 0, num_shards: int = 1, seed: int = 0, scale=(0.08, 1.0),
                   ratio=(3.0 / 4.0, 4.0 / 3.0), hw_decoder_load: float | None = None):
    """A DALI pipeline of torchvision's ImageNet recipe on decoded pixels.

    Train: ``fn.decoders.image_random_crop`` (RandomResizedCrop's area and aspect ranges)
    -> resize to ``size`` -> coin-flip mirror. Validation: decode -> resize the shorter
    side to 256/224 x ``size`` -> centre crop. Resizes are antialiased linear, in float.
    Outputs ``(images, labels)``: float CHW, RGB in 0..255 for ``output="dct"``, or
    normalized with ImageNet's mean and std for ``output="rgb"``. ``hw_decoder_load``:
    the share of images nvJPEG's ``mixed`` decoder gives the GPU's hardware JPEG engines
    (A100, H100), the rest decoded on CUDA cores and CPU threads; None keeps DALI's
    default (0.65). The CPU decoder ignores it.
    """
    dali = _dali()
    fn, types = dali.fn, dali.types
    if output not in ("dct", "rgb"):
        raise ValueError(f'output must be "dct" or "rgb", not {output!r}')
    decoder = "cpu" if device_id is None else "mixed"
    decoder_args = {} if hw_decoder_load is None else {"hw_decoder_load": float(hw_decoder_load)}

    @dali.pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=device_id, seed=seed,
                       prefetch_queue_depth=2)
    def pipeline():
        jpegs, targets = fn.readers.file(files=list(files), labels=list(labels), shard_id=shard_id,
                                         num_shards=num_shards, random_shuffle=train, pad_last_batch=True,
                                         name="reader", seed=seed)
        if train:
            images = fn.decoders.image_random_crop(jpegs, device=decoder, output_type=types.RGB,
                                                   random_area=list(scale), random_aspect_ratio=list(ratio),
                                                   num_attempts=10, **decoder_args)
            images = fn.resize(images, resize_x=size, resize_y=size, antialias=True, dtype=types.FLOAT)
            mirror = fn.random.coin_flip(probability=0.5)
        else:
            images = fn.decoders.image(jpegs, device=decoder, output_type=types.RGB, **decoder_args)
            images = _center_crop(dali, _resize_shorter(dali, images, jpegs, resize_size(size)), size)
            mirror = 0
        mean, std = ((0.0,) * 3, (1.0,) * 3) if output == "dct" else \
            ([255 * m for m in IMAGENET_MEAN], [255 * s for s in IMAGENET_STD])
        images = fn.crop_mirror_normalize(images, mirror=mirror, mean=list(mean), std=list(std),
                                          dtype=types.FLOAT, output_layout="CHW")
        return images, targets

    return pipeline()


def _resize_shorter(dali, images, jpegs, short: int):
    """torchvision's ``Resize(short)``: the longer side is truncated, not rounded, and the
    scale is the integer sizes' ratio (DALI's ``resize_shorter`` rounds and keeps a
    subpixel scale, which moves every sample)."""
    shape = dali.fn.peek_image_shape(jpegs, dtype=dali.types.FLOAT)
    height, width = shape[0], shape[1]
    shorter = dali.math.min(height, width)
    return dali.fn.resize(images, resize_y=dali.math.floor(short * height / shorter),
                          resize_x=dali.math.floor(short * width / shorter), antialias=True,
                          subpixel_scale=False, dtype=dali.types.FLOAT)


def _center_crop(dali, images, size: int):
    """torchvision's ``CenterCrop``: offset ``round((side - size) / 2)``, halves to even."""
    shape = dali.fn.cast(images.shape(), dtype=dali.types.FLOAT)

    def offset(side):
        excess = side - size
        half = dali.math.floor(excess / 2)
        odd_half = half - 2 * dali.math.floor(half / 2)
        return half + (excess - 2 * half) * odd_half

    anchor = dali.fn.stack(offset(shape[0]), offset(shape[1]))
    extent = dali.types.Constant([size, size], dtype=dali.types.FLOAT)
    return dali.fn.slice(images, anchor, extent, axes=[0, 1], normalized_anchor=False,
                         normalized_shape=False)


class CoefficientSource:
    """Parallel ``fn.external_source`` callback: the batch at a ``BatchInfo`` (epoch,
    iteration) as :class:`dctload.gpu.ToPacket` outputs and labels, read by dctload's C
    reader with the CPU loader's recipe. As DALI's worker processes need, a batch
    follows from its position alone, whichever worker reads it: the shard's order for an
    epoch (reshuffled for training) and the recipe's draws (torch's RNG seeded from
    ``seed``, epoch and iteration). Each worker keeps only the current epoch's order.
    Raises StopIteration past an epoch's end (the last batch is partial for validation,
    dropped for training)."""

    def __init__(self, files, labels, train: bool, size: int, batch_size: int,
                 shard_id: int = 0, num_shards: int = 1, seed: int = 0, scale=(0.08, 1.0)):
        self.files, self.labels = list(files), np.asarray(labels, np.int64)
        self.train, self.batch_size, self.seed = train, batch_size, seed
        self.recipe = imagenet(train, size, scale, last=gpu.ToPacket())
        self.shard = np.arange(shard_id, len(self.files), num_shards)
        self._shuffled = (None, self.shard)  # (epoch, order) of the last epoch read

    def __len__(self) -> int:
        n = len(self.shard)
        return n // self.batch_size if self.train else math.ceil(n / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The shard's files in the order ``epoch`` reads them. Shuffled once per epoch, not
        per batch: a shuffle of ImageNet's 1.28M files takes about 60 ms."""
        if not self.train:
            return self.shard
        if self._shuffled[0] != epoch:
            self._shuffled = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.shard))
        return self._shuffled[1]

    def __call__(self, info):
        from .reader import read_batch

        if info.iteration >= len(self):
            raise StopIteration
        start = info.iteration * self.batch_size
        indices = self.order(info.epoch_idx)[start:start + self.batch_size]
        torch.set_num_threads(1)  # one worker process per core already
        torch.manual_seed(int(np.random.SeedSequence([self.seed, info.epoch_idx, info.iteration]).generate_state(1)[0]))
        results = read_batch([self.files[i] for i in indices], num_threads=1, transform=self.recipe,
                             fallback="pixels", errors="return")
        # DALI hands a worker's exception on as text, so a file that cannot be read travels
        # as an empty packet labelled -1 - its index, and the loader raises its typed error.
        failed = [isinstance(r, Exception) for r in results]
        packets = [_EMPTY_PACKET if bad else [t.numpy() for t in r] for r, bad in zip(results, failed)]
        labels = [np.array([-1 - i]) if bad else self.labels[i: i + 1] for i, bad in zip(indices, failed)]
        return (*([p[k] for p in packets] for k in range(5)), labels)

    def raise_failure(self, labels: torch.Tensor) -> None:
        """Raises the error of the first file marked failed in a batch's ``labels``, by
        reading it again here (a JPEGError or OSError that names the file)."""
        from .reader import read_coefficients

        path = self.files[-1 - int(labels[labels < 0][0])]
        read_coefficients(path, fallback="pixels")
        raise RuntimeError(f"{path}: could not be read in a DALI worker, but reads in the main process")


_EMPTY_PACKET = [np.zeros((1, 1, 64), np.int16)] * 3 + [np.ones((3, 64), np.float32), np.zeros((3, 2, 6))]


def hybrid_pipeline(source: CoefficientSource, device_id: int | None = 0, num_workers: int = 4,
                    num_threads: int = 2):
    """DALI pipeline around a :class:`CoefficientSource`, run in parallel by ``num_workers``
    worker processes (forked, or spawned once the process has a CUDA context, which
    cannot be forked), each reading whole batches, ``num_workers`` batches ahead; pads
    each batch's blocks to its largest plane (``fn.pad``) and moves them to the GPU;
    outputs the five packet tensors, for :func:`dctload.gpu.resample_packets`, and the
    labels (on the host)."""
    dali = _dali()
    fn, types = dali.fn, dali.types

    @dali.pipeline_def(batch_size=source.batch_size, num_threads=num_threads, device_id=device_id,
                       prefetch_queue_depth=2, py_num_workers=num_workers,
                       py_start_method="spawn" if dali.backend.IsDriverInitialized() else "fork")
    def pipeline():
        y, cb, cr, tables, geometry, labels = fn.external_source(
            source=source, num_outputs=6, batch=True, batch_info=True, parallel=True,
            prefetch_queue_depth=num_workers,
            dtype=[types.INT16, types.INT16, types.INT16, types.FLOAT, types.FLOAT64, types.INT64])
        outputs = [fn.pad(y), fn.pad(cb), fn.pad(cr), tables, geometry]
        # the labels stay on the host, where the loader looks for files that failed
        return (*(o.gpu() for o in outputs), labels) if device_id is not None else (*outputs, labels)

    return pipeline()


class DALILoader:
    """``((y, cbcr), targets)`` batches from DALI, with a DataLoader's interface.

    ``backend``: ``"dali"`` (:func:`pixel_pipeline`, pixels converted on the device) or
    ``"dali-hybrid"`` (:func:`hybrid_pipeline`, exact DCT-domain resampling);
    ``output="rgb"`` gives the RGB baseline's normalized images instead of ``(y, cbcr)``
    and ``hw_decoder_load`` sets nvJPEG's share of hardware decoding (both ``"dali"``
    only; see :func:`pixel_pipeline`). ``num_threads``: DALI's threads, or for
    ``"dali-hybrid"`` its reading worker processes (spawned where CUDA is already in use,
    so a script needs the ``if __name__ == "__main__"`` guard). ``device_id=None`` runs
    DALI on the CPU (tests, CI). Shards for DistributedDataParallel:
    ``shard_id``/``num_shards``; validation yields every file of a shard once per epoch
    (the reader's padding is dropped). A file that cannot be read raises its
    ``JPEGError`` (or ``OSError``).
    """

    def __init__(self, samples: Sequence[tuple[str, int]], backend: str = "dali", train: bool = True,
                 size: int = 224, batch_size: int = 64, num_threads: int = 4, device_id: int | None = 0,
                 shard_id: int = 0, num_shards: int = 1, seed: int = 0, channels=None, output: str = "dct",
                 scale=(0.08, 1.0), hw_decoder_load: float | None = None):
        _dali()
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

        if device_id is not None and not torch.cuda.is_available():
            raise RuntimeError("DALI's GPU pipelines need CUDA, which torch does not see here; pass "
                               "device_id=None for DALI on the CPU, or use the CPU loader (dctload.DCTImageFolder)")
        files = [str(p) for p, _ in samples]
        labels = [int(t) for _, t in samples]
        self.backend, self.output = backend, output
        self.device = torch.device("cpu" if device_id is None else f"cuda:{device_id}")
        self.channels = None if channels is None else tuple(t.to(self.device) for t in batch.channel_indices(channels))
        policy = LastBatchPolicy.DROP if train else LastBatchPolicy.PARTIAL
        if backend == "dali":
            self.shard_files = _dali_shard(files, shard_id, num_shards)
            self.pipeline = pixel_pipeline(files, labels, train, size, output, batch_size, num_threads, device_id,
                                           shard_id, num_shards, seed, scale, hw_decoder_load=hw_decoder_load)
            try:  # the iterator runs the pipeline's first batches at once
                self.iterator = DALIGenericIterator([self.pipeline], ["images", "labels"], reader_name="reader",
                                                    last_batch_policy=policy, auto_reset=True)
            except RuntimeError as exc:
                raise unreadable_file_error(self.shard_files, exc) from exc
            shard = len(self.shard_files)
            self._len = shard // batch_size if train else math.ceil(shard / batch_size)
        elif backend == "dali-hybrid":
            if output != "dct":
                raise ValueError("the dali-hybrid backend yields DCT coefficients only (output='dct')")
            if hw_decoder_load is not None:
                raise ValueError("hw_decoder_load sets nvJPEG's decoding, which the dali-hybrid backend does not use")
            self.source = CoefficientSource(files, labels, train, size, batch_size, shard_id, num_shards, seed,
                                            scale)
            self.pipeline = hybrid_pipeline(self.source, device_id, num_workers=num_threads)
            self.iterator = DALIGenericIterator([self.pipeline], ["y", "cb", "cr", "tables", "geometry", "labels"],
                                                auto_reset=True, last_batch_policy=LastBatchPolicy.PARTIAL)
            self._len = len(self.source)
        else:
            raise ValueError(f"DALILoader backends are 'dali' and 'dali-hybrid', not {backend!r}")

    def __len__(self) -> int:
        return self._len

    # ``loader.sampler.set_epoch(epoch)``, as training scripts call it: DALI's reader
    # reshuffles by itself every epoch.
    sampler = SimpleNamespace(set_epoch=lambda epoch: None)

    def _outputs(self):
        batches = iter(self.iterator)
        while True:
            try:
                (outputs,) = next(batches)
            except StopIteration:
                return
            except RuntimeError as exc:
                if self.backend == "dali":
                    raise unreadable_file_error(self.shard_files, exc) from exc
                raise
            yield outputs

    def __iter__(self):
        for outputs in self._outputs():
            targets = outputs["labels"].reshape(-1).long()
            if self.backend == "dali-hybrid":
                if (targets < 0).any():
                    self.source.raise_failure(targets)
                targets = targets.to(self.device, non_blocking=True)
                packets = [outputs[k] for k in ("y", "cb", "cr", "tables", "geometry")]
                inputs = gpu.resample_packets(packets)
            elif self.output == "rgb":
                yield outputs["images"], targets
                continue
            else:
                inputs = gpu.pixels_to_batch(outputs["images"])
            if self.channels is not None:
                inputs = inputs[0].index_select(1, self.channels[0]), inputs[1].index_select(1, self.channels[1])
            yield inputs, targets


def unreadable_file_error(files: Sequence[str], error: Exception) -> Exception:
    """The error to raise when DALI's pipeline fails: its decoders name no file, so
    dctload's reader (entropy decoding only) looks through ``files``. The first that is
    damaged gives its typed error naming the file; files the reader refuses as
    unsupported (PNG, CMYK, lossless), which DALI may decode, are only listed."""
    from .errors import UnsupportedJPEGError
    from .reader import read_batch

    refused = [r for r in read_batch(files, errors="return", transform=_discard) if r is not None]
    damaged = [r for r in refused if not isinstance(r, UnsupportedJPEGError)]
    if damaged:
        damaged[0].add_note(f"found by dctload's reader after DALI's pipeline failed without naming a file; "
                            f"damaged files among the {len(files)}: {len(damaged)}")
        return damaged[0]
    listed = "".join(f"\n  {r}" for r in refused[:10]) + ("\n  ..." if len(refused) > 10 else "")
    return RuntimeError(f"DALI's pipeline failed without naming a file ({error}); dctload's reader finds none of "
                        f"its {len(files)} files damaged, and refuses {len(refused)} as unsupported" + listed)


def _discard(image) -> None:
    return None


def _dali_shard(files: list[str], shard_id: int, num_shards: int) -> list[str]:
    """The files of DALI reader shard ``shard_id``: contiguous ranges [n*k/N, n*(k+1)/N)."""
    n = len(files)
    return files[n * shard_id // num_shards: n * (shard_id + 1) // num_shards]
