"""Backend ``"cpu"``: DataLoader workers make the batches.

DCT output: :class:`dctload.DCTFiles` through the recipe's DCT transform, whole batches
per C call (crop-aware, :mod:`dctload.fused`); RGB output: ``decode_jpeg`` +
transforms.v2, what an RGB network's ImageNet script does. Augmentation is seeded per
(seed, epoch, sample): batches do not depend on the number of workers, on persistent
workers or on where a run was resumed.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset

from ..batch import collate
from ..folder import DCTFiles
from . import Loader


class RGBFiles(Dataset):
    """``(path, class index)`` samples -> ``(transform(decoded RGB uint8), class index)``:
    torchvision's ImageFolder with ``decode_image`` as its loader (libjpeg-turbo, any
    colour space to 3-channel RGB)."""

    def __init__(self, samples, transform=None):
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        image = torchvision.io.decode_image(path, mode=torchvision.io.ImageReadMode.RGB)
        return (self.transform(image) if self.transform is not None else image), target


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
            torch.default_generator.manual_seed(self._seed(epoch, index))  # as fused.seeded: the CPU draws only
            return self.dataset[index]

    def __getitems__(self, keys):
        """A whole batch through the dataset's batch path (``DCTFiles.load_batch``),
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


class CPULoader(Loader):
    """Training: shuffled, sharded, epoch-seeded batches, the last incomplete one dropped
    (as ImageNet scripts do). Validation: every image once over all ranks (strided
    shards, no padding), the last batch partial. ``dataloader`` is the DataLoader; batches
    for another device are copied there (from pinned memory when ``pin_memory``)."""

    def __init__(self, backend, recipe, samples, classes, options):
        super().__init__(backend, recipe, samples, classes, options)
        if options.output == "dct":
            self.dataset = DCTFiles(samples, recipe.dct_transform(), on_error=options.on_error, classes=classes)
            collate_fn = collate
        else:
            if options.on_error != "raise":
                raise ValueError("the RGB baseline (output='rgb') raises on bad files: on_error='raise'")
            self.dataset = RGBFiles(samples, recipe.rgb_transform())
            collate_fn = torch.utils.data.default_collate
        common = dict(collate_fn=collate_fn, **options.dataloader())
        if recipe.train:
            self.shuffle = EpochSampler(self.dataset, options.world, options.rank, options.seed)
            self.dataloader = DataLoader(EpochSeeded(self.dataset, options.seed), sampler=self.shuffle,
                                         drop_last=True, **common)
        else:
            shard = Subset(self.dataset, range(options.rank, len(self.dataset), options.world))
            self.dataloader = DataLoader(shard, shuffle=False, **common)

    def batches(self):
        if self.device.type == "cpu":
            yield from self.dataloader
            return
        for inputs, targets in self.dataloader:
            inputs = tuple(x.to(self.device, non_blocking=True) for x in inputs) if isinstance(inputs, (tuple, list)) \
                else inputs.to(self.device, non_blocking=True)
            yield inputs, targets.to(self.device, non_blocking=True)
