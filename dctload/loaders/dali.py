"""Backends ``"dali"`` and ``"dali-hybrid"``: NVIDIA DALI pipelines.

DALI has no operator that outputs DCT coefficients, so dctload bridges:

- ``"dali"`` (:func:`pixel_pipeline`): DALI reads and decodes (nvJPEG, ``device="mixed"``;
  its CPU decoder on ``device="cpu"``) and runs the recipe on pixels
  (:meth:`dctload.Recipe.dali_images`), then :func:`dctload.pixels.pixels_to_batch` (or,
  ``output="rgb"``, the normalized RGB batch of an RGB network: the baseline).
- ``"dali-hybrid"`` (:func:`hybrid_pipeline`): a parallel ``fn.external_source`` fed by
  dctload's C reader (entropy decoding in DALI's Python worker processes, no pixels)
  with the recipe's geometry; DALI pads and moves the blocks, and
  :func:`dctload.packet_resampling.resample_packets` resamples them exactly on the GPU.

Install DALI with ``pip install dctload[dali]``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..packet_resampling import resample_packets
from ..pixels import IMAGENET_MEAN, IMAGENET_STD, pixels_to_batch
from ..recipe import Recipe
from . import Loader


def _dali():
    try:
        import nvidia.dali as dali
        import nvidia.dali.plugin.pytorch  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"NVIDIA DALI is not installed ({exc}): `pip install dctload[dali]` (nvidia-dali-cuda120), "
            "or use backend 'coefficients' or 'nvjpeg', which need only torch"
        ) from None
    return dali


def pixel_pipeline(files: Sequence[str], labels: Sequence[int], recipe: Recipe, output: str = "dct",
                   batch_size: int = 64, num_threads: int = 4, device_id: int | None = 0, shard_id: int = 0,
                   num_shards: int = 1, seed: int = 0, hw_decoder_load: float | None = None):
    """A DALI pipeline of ``recipe`` on decoded pixels (:meth:`dctload.Recipe.dali_images`).

    Outputs ``(images, labels)``: float CHW, RGB in 0..255 for ``output="dct"``, or
    normalized with ImageNet's mean and std for ``output="rgb"``. ``hw_decoder_load``:
    the share of images nvJPEG's ``mixed`` decoder gives the GPU's hardware JPEG engines
    (A100, H100), the rest decoded on CUDA cores and CPU threads; None keeps DALI's
    default (0.65). The CPU decoder ignores it.
    """
    dali = _dali()
    fn, types = dali.fn, dali.types
    decoder = "cpu" if device_id is None else "mixed"
    decoder_args = {} if hw_decoder_load is None else {"hw_decoder_load": float(hw_decoder_load)}

    @dali.pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=device_id, seed=seed,
                       prefetch_queue_depth=2)
    def pipeline():
        jpegs, targets = fn.readers.file(files=list(files), labels=list(labels), shard_id=shard_id,
                                         num_shards=num_shards, random_shuffle=recipe.train, pad_last_batch=True,
                                         name="reader", seed=seed)
        images, mirror = recipe.dali_images(dali, jpegs, decoder, decoder_args)
        mean, std = ((0.0,) * 3, (1.0,) * 3) if output == "dct" else \
            ([255 * m for m in IMAGENET_MEAN], [255 * s for s in IMAGENET_STD])
        images = fn.crop_mirror_normalize(images, mirror=mirror, mean=list(mean), std=list(std),
                                          dtype=types.FLOAT, output_layout="CHW")
        return images, targets

    return pipeline()


class CoefficientSource:
    """Parallel ``fn.external_source`` callback: the batch at a ``BatchInfo`` (epoch,
    iteration) as :class:`dctload.packets.ToPacket` outputs and labels, read by dctload's C
    reader with the CPU loader's recipe. As DALI's worker processes need, a batch
    follows from its position alone, whichever worker reads it: the shard's order for an
    epoch (reshuffled for training) and the recipe's draws (torch's RNG seeded from
    ``seed``, epoch and iteration). Each worker keeps only the current epoch's order.
    Raises StopIteration past an epoch's end (the last batch is partial for validation,
    dropped for training). Training shards are padded as ``DistributedSampler`` pads them
    (every rank the same number of batches, or DistributedDataParallel waits forever);
    validation shards are not (every file once)."""

    def __init__(self, files, labels, recipe: Recipe, batch_size: int, shard_id: int = 0, num_shards: int = 1,
                 seed: int = 0):
        self.files, self.labels = list(files), np.asarray(labels, np.int64)
        self.train, self.batch_size, self.seed = recipe.train, batch_size, seed
        self.transform = recipe.packet_transform()
        files = np.arange(len(self.files))
        if recipe.train:
            files = np.resize(files, math.ceil(len(files) / num_shards) * num_shards)  # repeats the first few
        self.shard = files[shard_id::num_shards]
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
        from ..reader import read_batch

        if info.iteration >= len(self):
            raise StopIteration
        start = info.iteration * self.batch_size
        indices = self.order(info.epoch_idx)[start:start + self.batch_size]
        torch.set_num_threads(1)  # one worker process per core already
        torch.manual_seed(int(np.random.SeedSequence([self.seed, info.epoch_idx, info.iteration]).generate_state(1)[0]))
        results = read_batch([self.files[i] for i in indices], num_threads=1, transform=self.transform,
                             fallback="pixels", errors="return")
        # DALI hands a worker's exception on as text, so a file that cannot be read travels
        # as an empty packet labelled -1 - its index, and the loader raises its typed error.
        failed = [isinstance(r, Exception) for r in results]
        packets = [_EMPTY_PACKET if bad else [t.numpy() for t in r] for r, bad in zip(results, failed)]
        labels = [np.array([-1 - i]) if bad else self.labels[i: i + 1] for i, bad in zip(indices, failed)]
        return (*([p[k] for p in packets] for k in range(5)), labels)

    def raise_failure(self, labels: torch.Tensor) -> None:
        """Raises the error of the first file marked failed in a batch's ``labels``, by
        reading and transforming it again here (a JPEGError or OSError that names the file)."""
        from ..reader import read_coefficients

        path = self.files[-1 - int(labels[labels < 0][0])]
        self.transform(read_coefficients(path, fallback="pixels"))
        raise RuntimeError(f"{path}: could not be read in a DALI worker, but reads in the main process")


_EMPTY_PACKET = [np.zeros((1, 1, 64), np.int16)] * 3 + [np.ones((3, 64), np.float32), np.zeros((3, 2, 6))]


def hybrid_pipeline(source: CoefficientSource, device_id: int | None = 0, num_workers: int = 4,
                    num_threads: int = 2):
    """DALI pipeline around a :class:`CoefficientSource`, run in parallel by ``num_workers``
    worker processes (forked, or spawned once the process has a CUDA context, which
    cannot be forked), each reading whole batches, ``num_workers`` batches ahead; pads
    each batch's blocks to its largest plane (``fn.pad``) and moves them to the GPU;
    outputs the five packet tensors, for :func:`dctload.packet_resampling.resample_packets`, and the
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


class DALILoader(Loader):
    """``pipeline``: the DALI pipeline; ``"dali-hybrid"`` reads with ``workers`` worker
    processes (spawned where CUDA is already in use, so a script needs the ``if __name__
    == "__main__"`` guard), ``"dali"`` decodes with ``workers`` threads. DALI runs on the
    CPU for ``device="cpu"`` (tests, CI). Validation yields every file of a shard once
    per epoch (the reader's padding is dropped); DALI's reader reshuffles training by
    itself every epoch. A file that cannot be read raises its ``JPEGError`` (or ``OSError``).
    """

    def __init__(self, backend, recipe, samples, classes, options):
        super().__init__(backend, recipe, samples, classes, options)
        _dali()
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

        if options.on_error != "raise":
            raise ValueError(f"the {backend!r} backend raises on bad files (on_error='raise')")
        files = [str(p) for p, _ in samples]
        labels = [int(t) for _, t in samples]
        device_id = None if options.device.type == "cpu" else \
            options.device.index if options.device.index is not None else torch.cuda.current_device()
        threads = max(options.workers, 1)
        policy = LastBatchPolicy.DROP if recipe.train else LastBatchPolicy.PARTIAL
        if backend == "dali":
            self.shard_files = _dali_shard(files, options.rank, options.world)
            self.pipeline = pixel_pipeline(files, labels, recipe, options.output, options.batch_size, threads,
                                           device_id, options.rank, options.world, options.seed,
                                           hw_decoder_load=options.hw_decoder_load)
            try:  # the iterator runs the pipeline's first batches at once
                self.iterator = DALIGenericIterator([self.pipeline], ["images", "labels"], reader_name="reader",
                                                    last_batch_policy=policy, auto_reset=True)
            except RuntimeError as exc:
                raise unreadable_file_error(self.shard_files, exc) from exc
            shard = len(self.shard_files)
            self._len = shard // options.batch_size if recipe.train else math.ceil(shard / options.batch_size)
        else:
            self.source = CoefficientSource(files, labels, recipe, options.batch_size, options.rank, options.world,
                                            options.seed)
            self.pipeline = hybrid_pipeline(self.source, device_id, num_workers=threads)
            self.iterator = DALIGenericIterator([self.pipeline], ["y", "cb", "cr", "tables", "geometry", "labels"],
                                                auto_reset=True, last_batch_policy=LastBatchPolicy.PARTIAL)
            self._len = len(self.source)

    def __len__(self) -> int:
        return self._len

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

    def batches(self):
        for outputs in self._outputs():
            targets = outputs["labels"].reshape(-1).long()
            if self.backend == "dali-hybrid":
                if (targets < 0).any():
                    self.source.raise_failure(targets)
                packets = [outputs[k] for k in ("y", "cb", "cr", "tables", "geometry")]
                yield resample_packets(packets), targets.to(self.device, non_blocking=True)
            elif self.options.output == "rgb":
                yield outputs["images"], targets.to(self.device, non_blocking=True)
            else:
                yield pixels_to_batch(outputs["images"]), targets.to(self.device, non_blocking=True)


def unreadable_file_error(files: Sequence[str], error: Exception) -> Exception:
    """The error to raise when DALI's pipeline fails: its decoders name no file, so
    dctload's reader (entropy decoding only) looks through ``files``. The first that is
    damaged gives its typed error naming the file; files the reader refuses as
    unsupported (PNG, CMYK, lossless), which DALI may decode, are only listed."""
    from ..errors import UnsupportedJPEGError
    from ..reader import read_batch

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
