"""Optimizers for the training recipes: weight decay only on conv and linear weights,
and JPEG-DL's quantization steps in their own group (JPEG-DL section 4: Adam at
lr 3e-3 to 4e-3 on CIFAR and fine-grained sets, SGD on ImageNet; never weight decay)."""

from __future__ import annotations

import torch
from torch import nn

from .jpeg_dl import quantization_parameters


def parameter_groups(model: nn.Module, weight_decay: float) -> tuple[list[dict], list[nn.Parameter]]:
    """The network's SGD groups (decay on weights of rank > 1; none on BN and biases)
    and, apart, the quantization parameters."""
    quantization = {id(p) for p in quantization_parameters(model)}
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad and id(p) not in quantization:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay, "name": "weights"},
              {"params": no_decay, "weight_decay": 0.0, "name": "norms_and_biases"}]
    return groups, [p for p in quantization_parameters(model) if p.requires_grad]


def make_optimizers(model: nn.Module, lr: float, momentum: float = 0.9, nesterov: bool = False,
                    weight_decay: float = 1e-4, steps_optimizer: str = "adam",
                    steps_lr: float = 3e-3) -> list[torch.optim.Optimizer]:
    """SGD for the network; the quantization steps with ``steps_optimizer`` ("adam" or
    "sgd") at ``steps_lr`` and no weight decay. One optimizer when both are SGD (a
    group of its own for the steps), else two: step both, schedule both."""
    if steps_optimizer not in ("adam", "sgd"):
        raise ValueError(f'steps_optimizer must be "adam" or "sgd", not {steps_optimizer!r}')
    groups, steps = parameter_groups(model, weight_decay)
    steps_group = {"params": steps, "lr": steps_lr, "weight_decay": 0.0, "name": "quantization_steps"}
    if steps and steps_optimizer == "sgd":
        groups.append(steps_group)
    optimizers = [torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)]
    if steps and steps_optimizer == "adam":
        optimizers.append(torch.optim.Adam([steps_group], lr=steps_lr, weight_decay=0.0))
    return optimizers
