"""Loading converted tensors into a model only when they fit it one to one (keys and shapes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import torch
from torch import nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def _first(names: Sequence[str]) -> str:
    return f"{list(names[:3])}{' ...' if len(names) > 3 else ''}"


def load_checked(model: ModuleT, converted: Mapping[str, torch.Tensor], what: str,
                 unexpected: Sequence[str] = ()) -> ModuleT:
    """``model`` (eval mode) holding ``converted`` (already in its names), cast to its dtypes.

    Args:
        model: the model to fill.
        converted: a tensor for every entry of ``model.state_dict()``, and nothing else.
        what: the start of the messages (e.g. ``weights do not fit the SNAC config``).
        unexpected: source keys already found to have no place in ``model`` (reported with the others).

    Raises:
        ValueError: one line: ``<what>: missing [...], unexpected [...]`` or
            ``<what>: <key> has shape (...), expected (...)`` (the first offending keys).
    """
    ours = model.state_dict()
    missing = sorted(set(ours) - set(converted))
    unexpected = [*unexpected, *sorted(set(converted) - set(ours))]
    if missing or unexpected:
        raise ValueError(f"{what}: missing {_first(missing)}, unexpected {_first(unexpected)}")
    wrong = [key for key, value in converted.items() if tuple(value.shape) != tuple(ours[key].shape)]
    if wrong:
        key = wrong[0]
        raise ValueError(f"{what}: {key} has shape {tuple(converted[key].shape)}, expected "
                         f"{tuple(ours[key].shape)}")
    model.load_state_dict({key: value.to(ours[key].dtype) for key, value in converted.items()}, strict=True)
    return model.eval()
