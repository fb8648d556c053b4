"""Backend ``"coefficients"``: exact DCT-domain resampling on the GPU.

DataLoader workers only entropy-decode (dctload's C reader) and draw the recipe: each
fills a whole batch of sparse packets (:mod:`dctload.packets`: the quantized blocks under
each crop box, as masks and nonzero values) in one C call with the GIL released,
decoding each file only down to the blocks it ships (:func:`dctload.fused.read_packed`).
The batch is copied from pinned memory and the device resamples it exactly
(:mod:`dctload.packet_resampling`), with no host sync, equal within float32 rounding to
the ``cpu`` backend.
"""

from __future__ import annotations

from torch.utils.data import DataLoader, DistributedSampler, Subset

from ..folder import DCTFiles
from ..packet_resampling import resample_packets
from ..packets import collate_packets
from . import Loader


def gpu_batches(dataset, collate_fn, recipe, options) -> tuple[DataLoader, DistributedSampler | None]:
    """The DataLoader of the GPU backends' host side: a DistributedSampler for training
    (the last incomplete batch dropped), strided shards for validation (every file once
    over all ranks, no padding)."""
    if recipe.train:
        sampler = DistributedSampler(dataset, num_replicas=options.world, rank=options.rank, shuffle=True,
                                     seed=options.seed, drop_last=False)
    else:
        dataset, sampler = Subset(dataset, range(options.rank, len(dataset), options.world)), None
    loader = DataLoader(dataset, sampler=sampler, collate_fn=collate_fn, drop_last=recipe.train, **options.dataloader())
    return loader, sampler


class PacketLoader(Loader):
    """``dataloader``: the DataLoader of packets; ``dataset``: its :class:`dctload.DCTFiles`
    (``skipped()`` for ``on_error="skip"``)."""

    def __init__(self, backend, recipe, samples, classes, options):
        super().__init__(backend, recipe, samples, classes, options)
        self.dataset = DCTFiles(samples, recipe.packet_transform(), on_error=options.on_error, classes=classes)
        self.dataloader, self.shuffle = gpu_batches(self.dataset, collate_packets, recipe, options)

    def batches(self):
        for packets, targets in self.dataloader:
            yield resample_packets(packets, self.device), targets.to(self.device, non_blocking=True)
