"""One loader API over every backend: :func:`loader`.

::

    train = dctload.loader("imagenet/train", backend="cpu", recipe=dctload.Recipe(train=True))
    for epoch in range(epochs):
        train.set_epoch(epoch)
        for (y, cbcr), targets in train:
            ...

Every backend reads the same :class:`~dctload.recipe.Recipe` and speaks one vocabulary
(``batch_size``, ``workers``, ``device``, ``rank``/``world``, ``seed``), and yields
``((y, cbcr), targets)`` (the batch contract, :mod:`dctload.batch`), or ``(images,
targets)`` of normalized RGB for ``output="rgb"`` (the baseline an RGB network reads):

========================  ===========================================================  ==========
backend                   what runs where                                              output
========================  ===========================================================  ==========
``"cpu"``                 DataLoader workers: dctload's C reader and exact resampling  dct, rgb
                          (crop-aware, whole batches per call); RGB: ``decode_jpeg`` +
                          transforms.v2. Seeded per (seed, epoch, image): exact resume.
``"coefficients"``        workers entropy-decode and ship sparse packets; the GPU      dct
                          resamples exactly (:mod:`dctload.packet_resampling`)
``"nvjpeg"``              workers read bytes; torchvision's nvJPEG decodes on the GPU  dct
``"dali"``                DALI decodes (nvJPEG) and augments pixels on the GPU         dct, rgb
``"dali-hybrid"``         DALI's worker processes run dctload's reader; exact GPU      dct
                          resampling
========================  ===========================================================  ==========

The modules of this package are the backends; :mod:`dctload.recipe` renders the recipe
for each.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Sequence

import torch

from ..folder import check_on_error, scan
from ..reader import default_num_threads
from ..recipe import Recipe

BACKENDS = ("cpu", "coefficients", "nvjpeg", "dali", "dali-hybrid")
#: Backends that can give an RGB network its input (``output="rgb"``).
RGB_BACKENDS = ("cpu", "dali")


def default_workers(device: torch.device | None = None) -> int:
    """Workers by default: the usable cores (:func:`dctload.reader.default_num_threads`)
    shared among the processes torchrun starts on this node (``LOCAL_WORLD_SIZE``), one
    core of each share left to a process that drives a GPU."""
    share = max(1, default_num_threads() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    return share - 1 if device is not None and device.type == "cuda" and share > 2 else share


def worker_init(_worker_id: int) -> None:
    """Every loader worker process: one torch thread (one process per core already)."""
    torch.set_num_threads(1)


@dataclasses.dataclass(frozen=True)
class Options:
    """The vocabulary every backend reads (see :func:`loader`)."""

    batch_size: int
    workers: int
    device: torch.device
    rank: int
    world: int
    seed: int
    output: str
    on_error: str
    hw_decoder_load: float | None
    pin_memory: bool
    prefetch_factor: int | None
    persistent_workers: bool

    def dataloader(self) -> dict:
        """The DataLoader arguments these options set (backends built on a DataLoader)."""
        workers = self.workers
        return dict(batch_size=self.batch_size, num_workers=workers, pin_memory=self.pin_memory,
                    persistent_workers=self.persistent_workers and workers > 0,
                    prefetch_factor=self.prefetch_factor if workers else None,
                    worker_init_fn=worker_init if workers else None)


class Loader:
    """What :func:`loader` returns: ``len()`` batches, iteration, :meth:`set_epoch`
    (also as ``sampler.set_epoch``, as ImageNet scripts call it), and ``backend``,
    ``recipe``, ``samples``, ``classes``, ``device``, ``dataset`` (the dataset under a
    DataLoader, or None). Backends built on a DataLoader set ``dataloader`` and
    ``shuffle`` (its sampler, which :meth:`set_epoch` reaches)."""

    dataset = None
    dataloader = None
    shuffle = None

    def __init__(self, backend: str, recipe: Recipe, samples: list, classes: list, options: Options):
        self.backend, self.recipe, self.samples, self.classes = backend, recipe, samples, classes
        self.options = options
        self.device = options.device

    def __len__(self) -> int:
        return len(self.dataloader)

    def batches(self) -> Iterator:
        """The backend's batches, before the recipe's channel subset."""
        raise NotImplementedError

    def __iter__(self):
        if self.options.output == "rgb" or self.backend == "cpu":  # the cpu recipe selects channels itself
            yield from self.batches()
            return
        for (y, cbcr), targets in self.batches():
            yield self.recipe.select(y, cbcr), targets

    def set_epoch(self, epoch: int) -> None:
        """The shuffle (and, for ``cpu``, the draws) of ``epoch``. DALI's backends shuffle
        by their own count of epochs since the loader was made: there it does nothing,
        and a resumed run is not exact."""
        if self.shuffle is not None:
            self.shuffle.set_epoch(epoch)

    @property
    def sampler(self):
        return self

    def skipped(self) -> list[tuple[str, str, str]]:
        """Files skipped or read with warnings so far (``on_error="skip"``), as
        :meth:`dctload.DCTFiles.skipped` lists them."""
        return self.dataset.skipped() if hasattr(self.dataset, "skipped") else []

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(backend={self.backend!r}, {len(self.samples)} files, {self.recipe}, "
                f"batch_size={self.options.batch_size}, workers={self.options.workers}, device={self.device})")


def require_cuda(backend: str, device: torch.device) -> None:
    """A clear error where CUDA is asked for and absent."""
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"the {backend!r} backend was asked for CUDA, which torch does not see here; "
                           "pass device='cpu' or use backend='cpu'")


def loader(source: str | os.PathLike | Sequence[tuple[str, int]], backend: str = "cpu", recipe: Recipe | None = None,
           *, batch_size: int = 64, workers: int | None = None, device: str | torch.device | None = None,
           rank: int = 0, world: int = 1, seed: int = 0, output: str = "dct", on_error: str = "raise",
           hw_decoder_load: float | None = None, pin_memory: bool | None = None, prefetch_factor: int | None = None,
           persistent_workers: bool = True) -> Loader:
    """Batches of ``source`` (an ImageFolder-layout folder, or ``(path, class index)``
    samples) through ``recipe`` (default: the training recipe at 224) on ``backend``.

    ``workers``: the CPU processes or threads that feed the backend - DataLoader worker
    processes, DALI's threads (``dali``) or DALI's Python worker processes
    (``dali-hybrid``); default :func:`default_workers`. ``device``: where batches (inputs
    and targets) are delivered; default ``cpu`` for the ``cpu`` backend (which makes them
    on the CPU and copies them from pinned memory to another device), else ``cuda``,
    where the GPU backends make them (they also run on ``cpu``, for tests). ``rank``,
    ``world``: this process's shard for DistributedDataParallel; training shuffles per
    epoch from ``seed``, validation reads every file once over all ranks. ``output``:
    ``"dct"`` (the batch contract) or ``"rgb"`` (``cpu`` and ``dali``).
    ``on_error``: ``"raise"``, ``"fallback"`` or ``"skip"`` (see :class:`dctload.DCTFiles`;
    ``cpu`` and ``coefficients``; the others raise the file's typed error).
    ``hw_decoder_load``: nvJPEG's share of hardware decoding (``dali`` only).
    ``pin_memory`` (default: when delivering to CUDA), ``prefetch_factor`` and
    ``persistent_workers``: the DataLoader's, for the backends built on one.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if output not in ("dct", "rgb"):
        raise ValueError(f'output must be "dct" or "rgb", not {output!r}')
    if output == "rgb" and backend not in RGB_BACKENDS:
        raise ValueError(f"the {backend!r} backend yields DCT coefficients; RGB output comes from "
                         f"{' or '.join(map(repr, RGB_BACKENDS))}")
    if hw_decoder_load is not None and backend != "dali":
        raise ValueError(f"hw_decoder_load sets DALI's nvJPEG decoding (backend 'dali'), which {backend!r} does not use")
    check_on_error(on_error)
    recipe = recipe if recipe is not None else Recipe()
    if output == "rgb" and recipe.channels is not None:
        raise ValueError("a channel subset is for DCT output; the recipe has channels set and output='rgb'")
    device = torch.device(device if device is not None else "cpu" if backend == "cpu" else "cuda")
    require_cuda(backend, device)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside a world of {world}")
    if isinstance(source, (str, os.PathLike)):
        samples, classes = scan(source)
    else:
        samples = [(os.fspath(path), int(target)) for path, target in source]
        classes = [str(k) for k in range(max((t for _, t in samples), default=-1) + 1)]
    if not samples:
        raise ValueError(f"no JPEG files in {source}")
    options = Options(batch_size=batch_size, workers=default_workers(device) if workers is None else workers,
                      device=device, rank=rank, world=world, seed=seed, output=output, on_error=on_error,
                      hw_decoder_load=hw_decoder_load,
                      pin_memory=device.type == "cuda" if pin_memory is None else pin_memory,
                      prefetch_factor=prefetch_factor, persistent_workers=persistent_workers)
    if backend == "cpu":
        from .cpu import CPULoader as kind
    elif backend == "coefficients":
        from .exact_gpu import PacketLoader as kind
    elif backend == "nvjpeg":
        from .nvjpeg import NvJPEGLoader as kind
    else:
        from .dali import DALILoader as kind
    return kind(backend, recipe, samples, classes, options)


__all__ = ["BACKENDS", "Loader", "Options", "RGB_BACKENDS", "default_workers", "loader", "worker_init"]
