"""Training and validation loaders for DCT and RGB models, each with its own best
pipeline: dctload's coefficients for DCT models, ``decode_jpeg`` + transforms.v2 for RGB.

Augmentation is seeded per (seed, epoch, sample): results do not depend on the number of
workers, on persistent workers or on where a run was resumed.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision
import torchvision.transforms.v2
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset

import dctload
import dctload.gpu
import dctload.transforms as T
from dctload.pixels import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401 - nets' RGB constants live in dctload


def dct_transform(train: bool, size: int, channels=None, scale=(0.08, 1.0)):
    """The DCT recipe in JPEG units (normalization belongs to the model, after any
    requantization): RandomResizedCrop + flip, or Resize + CenterCrop."""
    return T.imagenet(train, size, scale, channels)


def rgb_transform(train: bool, size: int, scale=(0.08, 1.0)):
    """torchvision's ImageNet recipe on decoded uint8 tensors (transforms.v2)."""
    v2 = torchvision.transforms.v2
    geometry = [v2.RandomResizedCrop(size, scale, antialias=True), v2.RandomHorizontalFlip()] if train else \
        [v2.Resize(T.resize_size(size), antialias=True), v2.CenterCrop(size)]
    return v2.Compose([*geometry, v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def decode_rgb(path: str) -> torch.Tensor:
    """libjpeg-turbo through torchvision, any JPEG colour space to 3-channel RGB."""
    return torchvision.io.decode_image(path, mode=torchvision.io.ImageReadMode.RGB)


def image_folder(root, dct: bool, train: bool, size: int, channels=None, scale=(0.08, 1.0), on_error: str = "raise"):
    if dct:
        return dctload.DCTImageFolder(root, transform=dct_transform(train, size, channels, scale), on_error=on_error)
    return torchvision.datasets.ImageFolder(root, transform=rgb_transform(train, size, scale), loader=decode_rgb)


class EpochSeeded(Dataset):
    """Fetches ``(epoch, index)`` keys with the torch RNG seeded from (seed, epoch, index),
    restoring the caller's RNG afterwards."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def _seed(self, epoch: int, index: int) -> int:
        return int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1, dtype=np.uint64)[0])

    def __getitem__(self, key):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed(epoch, index))
            return self.dataset[index]

    def __getitems__(self, keys):
        """A whole batch through the dataset's batch path (``DCTImageFolder.load_batch``),
        with the same per-sample seeds; per sample for other datasets."""
        if not hasattr(self.dataset, "load_batch"):
            return [self[key] for key in keys]
        return self.dataset.load_batch([index for _, index in keys], seeds=[self._seed(*key) for key in keys])


class EpochSampler(Sampler):
    """A ``DistributedSampler`` (shuffled from (seed, epoch), one shard per rank) that
    yields ``(epoch, index)`` keys for :class:`EpochSeeded`."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int):
        self.shards = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.shards.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.shards)

    def __iter__(self):
        return ((self.epoch, index) for index in self.shards)


def collate_for(dct: bool):
    return dctload.collate if dct else torch.utils.data.default_collate


def _worker_init(_):
    torch.set_num_threads(1)


def train_loader(dataset: Dataset, batch_size: int, workers: int, seed: int, rank: int = 0, world: int = 1,
                 dct: bool = True, pin_memory: bool = False) -> DataLoader:
    """Shuffled, sharded, epoch-seeded batches (``loader.sampler.set_epoch`` each epoch);
    the last incomplete batch is dropped, as ImageNet scripts do."""
    return DataLoader(EpochSeeded(dataset, seed), batch_size=batch_size,
                      sampler=EpochSampler(dataset, world, rank, seed), num_workers=workers,
                      collate_fn=collate_for(dct), pin_memory=pin_memory, drop_last=True,
                      persistent_workers=workers > 0, worker_init_fn=_worker_init if workers else None)


def val_loader(dataset: Dataset, batch_size: int, workers: int, rank: int = 0, world: int = 1,
               dct: bool = True, pin_memory: bool = False) -> DataLoader:
    """Every image exactly once over all ranks (strided shards, no padding)."""
    shard = Subset(dataset, range(rank, len(dataset), world))
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_for(dct),
                      pin_memory=pin_memory, persistent_workers=workers > 0,
                      worker_init_fn=_worker_init if workers else None)


GPU_LOADERS = dctload.gpu.BACKENDS


def gpu_loaders(kind: str, train_set, val_set, batch_size: int, workers: int, seed: int, rank: int, world: int,
                dct: bool, size: int, channels=None, scale=(0.08, 1.0), device=None,
                hw_decoder_load: float | None = None):
    """(train, val) loaders that build batches on the GPU (:mod:`dctload.gpu`,
    :mod:`dctload.dali`) over the folders' samples. DCT models take any of
    :data:`GPU_LOADERS`; RGB models take ``"dali"`` (DALI's normalized RGB).
    ``hw_decoder_load`` (nvJPEG's share of hardware decoding) is for ``"dali"`` only.
    Augmentation is random per worker, not per (seed, epoch, image): resumed runs are
    not bit-exact."""
    if not dct and kind != "dali":
        raise ValueError(f"RGB models load with 'cpu' or 'dali', not {kind!r}")
    if kind in ("coefficients", "nvjpeg"):
        if hw_decoder_load is not None:  # DALILoader itself refuses it for 'dali-hybrid'
            raise ValueError(f"hw_decoder_load sets DALI's nvJPEG decoding (loader 'dali'), not {kind!r}'s")
        common = dict(backend=kind, size=size, batch_size=batch_size, workers=workers, device=device,
                      channels=channels, rank=rank, world=world, seed=seed, scale=scale)
        return (dctload.gpu.GPULoader(train_set.samples, train=True, **common),
                dctload.gpu.GPULoader(val_set.samples, train=False, **common))
    from dctload.dali import DALILoader

    device = torch.device(device if device is not None else "cuda")
    device_id = None if device.type == "cpu" else device.index if device.index is not None else torch.cuda.current_device()
    common = dict(backend=kind, size=size, batch_size=batch_size, num_threads=max(workers, 1), device_id=device_id,
                  shard_id=rank, num_shards=world, seed=seed, channels=channels, output="dct" if dct else "rgb",
                  scale=scale, hw_decoder_load=hw_decoder_load)
    return DALILoader(train_set.samples, train=True, **common), DALILoader(val_set.samples, train=False, **common)
