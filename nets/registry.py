"""The model registry, timm's ``create_model`` pattern: each builder registers itself in
its own file with ``@register_model(input=...)``, declaring the input it takes, so adding
a variant touches only the file that defines it."""

from __future__ import annotations

import dataclasses
from typing import Callable

from torch import nn

#: What a model reads: the batch contract's ``(y, cbcr)`` (``dctload.batch``), or an RGB image batch.
INPUTS = ("dct", "rgb")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    builder: Callable[..., nn.Module]
    input: str


_MODELS: dict[str, ModelEntry] = {}


def register_model(input: str, name: str | None = None) -> Callable:
    """Decorator: registers a builder under its function name (or ``name``); ``input`` is
    ``"dct"`` or ``"rgb"``."""
    if input not in INPUTS:
        raise ValueError(f"input must be one of {INPUTS}, not {input!r}")

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        if key in _MODELS and _MODELS[key].builder is not builder:
            raise ValueError(f"a model named {key!r} is already registered")
        _MODELS[key] = ModelEntry(builder, input)
        return builder
    return decorate


def list_models(input: str | None = None) -> list[str]:
    """Registered names, all or those taking ``input``."""
    return sorted(k for k, e in _MODELS.items() if input is None or e.input == input)


def model_input(name: str) -> str:
    """``"dct"`` or ``"rgb"``: what the model ``name`` reads."""
    return _entry(name).input


def is_dct_model(name: str) -> bool:
    return model_input(name) == "dct"


def _entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return _MODELS[name]


def create_model(name: str, num_classes: int = 1000, channels: str | tuple | None = None, **kwargs) -> nn.Module:
    """A model by registry name. ``channels``: a channel subset (preset name or (luma,
    chroma) frequency lists, see ``dctload.batch.channel_indices``) for DCT models."""
    entry = _entry(name)
    if channels is not None:
        if entry.input != "dct":
            raise ValueError(f"{name} takes RGB input: channel subsets are for DCT models")
        from dctload.batch import channel_counts

        kwargs["in_channels"] = channel_counts(channels)
    return entry.builder(num_classes=num_classes, **kwargs)
