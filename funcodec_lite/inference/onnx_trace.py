"""Exporting one graph to ONNX with the TorchScript tracer, with the layer that fails named in one line."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

DEFAULT_OPSET = 17


class ExportError(ValueError):
    """A model (or one of its layers) that cannot be exported; the message is one line."""


@contextmanager
def _layer_stack(root: nn.Module) -> Iterator[list[str]]:
    """Keeps the names of the modules whose forward is running (innermost last) while the block runs."""
    stack: list[str] = []
    names = {module: name for name, module in root.named_modules()}
    handles = []

    def leave(*_) -> None:  # a forward hook that returned something would replace the output
        if stack:
            stack.pop()

    for module, name in names.items():
        label = f"{name or 'model'} ({type(module).__name__})"
        handles.append(module.register_forward_pre_hook(lambda *_, label=label: stack.append(label)))
        handles.append(module.register_forward_hook(leave))
    try:
        yield stack
    finally:
        for handle in handles:
            handle.remove()


class _CallRecorder(TorchFunctionMode):
    """Records (torch function name, innermost running layer) for each torch call of an eager pass."""

    def __init__(self, stack: list[str]) -> None:
        super().__init__()
        self.stack, self.calls = stack, []

    def __torch_function__(self, func: Callable, types, args=(), kwargs=None):
        self.calls.append((getattr(func, "__name__", ""), self.stack[-1] if self.stack else "model"))
        return func(*args, **(kwargs or {}))


def _layer_of_operator(graph: nn.Module, example: torch.Tensor, message: str) -> str | None:
    """The layer that calls the operator an exporter error names (``aten::name``), found by an eager pass."""
    found = re.search(r"aten::(\w+)", message)
    if not found:
        return None
    op = found.group(1)
    with _layer_stack(graph) as stack, torch.no_grad(), _CallRecorder(stack) as recorder:
        try:
            graph(example)
        except Exception:  # noqa: BLE001 - only looking for the layer (a multi-input graph fails here)
            pass
    for name, layer in recorder.calls:
        if name and (name == op or op.endswith(f"_{name}") or name.endswith(f"_{op}")):
            return layer
    return None


def _layer_of_scope(message: str) -> str | None:
    """The layer named by the TorchScript scope an exporter error quotes (``scope: Cls::/pkg.Cls::name``)."""
    found = re.search(r"scope: (\S+)", message)
    if not found:
        return None
    parts = [part.split("::") for part in found.group(1).rstrip(",]").split("/") if "::" in part]
    names = [name for _, name in parts if name]
    return f"{'.'.join(names) or 'model'} ({parts[-1][0].rpartition('.')[2]})" if parts else None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__).split(" [Caused by")[0][:300]


def export_graph(graph: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], path: str | os.PathLike,
                 input_name: str | list[str], output_name: str | list[str], dynamic: dict,
                 output_dynamic: dict, opset: int = DEFAULT_OPSET) -> None:
    """``torch.onnx.export`` (TorchScript tracer) of one graph with dynamic axes.

    Args:
        example: the input (or a tuple of inputs) to trace with.
        input_name, output_name: the name, or the names, of the inputs and outputs.
        dynamic, output_dynamic: axis -> name for the one input / output, or name -> {axis: name}.

    Raises:
        ExportError: the exporter failed; the line names the layer (the one running when tracing failed,
            or the one calling the operator the converter rejected) and the exporter's reason.
    """
    inputs = example if isinstance(example, tuple) else (example,)
    input_names = [input_name] if isinstance(input_name, str) else input_name
    output_names = [output_name] if isinstance(output_name, str) else output_name
    axes = {**({input_name: dynamic} if isinstance(input_name, str) else dynamic),
            **({output_name: output_dynamic} if isinstance(output_name, str) else output_dynamic)}
    with _layer_stack(graph) as stack, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape checks turned into constants
        try:
            torch.onnx.export(graph, inputs, str(path), input_names=input_names, output_names=output_names,
                              dynamic_axes=axes, opset_version=opset, dynamo=False, do_constant_folding=True)
            return
        except Exception as error:  # noqa: BLE001 - any exporter failure becomes one line
            layer = stack[-1] if stack else _layer_of_scope(str(error))
            reason = _first_line(error)
    layer = layer or _layer_of_operator(graph, inputs[0], reason) or "(unknown layer)"
    raise ExportError(f"cannot export layer {layer}: {reason}")
