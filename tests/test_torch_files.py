"""funcodec_lite.utils.torch_files: the one reader of PyTorch files (weights_only, named extra globals)."""

import argparse
import collections
import hashlib
import pickle
import shutil
import warnings

import numpy as np
import pytest
import torch

from funcodec_lite.utils.torch_files import (
    file_sha256,
    first_line,
    numpy_scalar_globals,
    plain,
    read_torch_file,
    source_provenance,
    state_dict_in,
)


def test_reads_tensors_and_allowed_globals_only(tmp_path):
    path = tmp_path / "a.pt"
    torch.save({"w": torch.arange(3.0), "args": argparse.Namespace(lr=0.5)}, path)
    with pytest.raises(ValueError, match=r"a.pt: holds objects that are not loaded for safety "
                       r"\(argparse.Namespace\); expected tensors$"):
        read_torch_file(path, expected="tensors")
    data = read_torch_file(path, [argparse.Namespace])
    assert torch.equal(data["w"], torch.arange(3.0)) and data["args"].lr == 0.5
    torch.save({"x": np.float32(1.5), "f": shutil.copyfile}, path)
    with pytest.raises(ValueError, match=r"\(shutil.copyfile\)$"):  # numpy allowed, the callable named
        read_torch_file(path, numpy_scalar_globals())
    torch.save({"x": np.float32(1.5), "n": [np.int64(3)]}, path)
    assert plain(read_torch_file(path, numpy_scalar_globals())) == {"x": 1.5, "n": [3]}


def test_stand_in_globals_replace_what_the_file_names(tmp_path):
    path = tmp_path / "history.pt"
    torch.save({"h": collections.defaultdict(list, a=[1])}, path)
    data = read_torch_file(path, [(lambda *_: {}, "collections.defaultdict"), list])
    assert data == {"h": {"a": [1]}} and type(data["h"]) is dict


@pytest.mark.parametrize("case", ["missing", "directory", "truncated", "legacy_pickle", "package"])
def test_bad_files_are_one_line_errors_without_warnings(tmp_path, case):
    path = tmp_path / "bad.pth"
    expected = {"missing": "bad.pth: no such file$", "directory": "bad.pth: is a directory$",
                "truncated": "bad.pth: not a readable PyTorch checkpoint \\(", "package": "torch.package",
                "legacy_pickle": "bad.pth: (not a readable|holds objects)"}[case]
    if case == "directory":
        path.mkdir()
    elif case == "truncated":
        torch.save({"w": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:2000])
    elif case == "legacy_pickle":
        path.write_bytes(pickle.dumps({"x": object()}))
    elif case == "package":
        with torch.package.PackageExporter(str(path)) as exporter:
            exporter.save_pickle("model", "model.pkl", {"w": torch.zeros(2)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's own warnings during the load are silenced
        with pytest.raises(ValueError, match=expected) as info:
            read_torch_file(path)
    assert "\n" not in str(info.value)


def test_state_dict_in_unwraps_in_order_and_checks_tensors():
    w = torch.ones(2)
    assert state_dict_in({"model": {"state_dict": {"w": w}}}, ("model", "state_dict"))["w"] is w
    assert state_dict_in({"w": w}, ("model",)) == {"w": w}
    assert state_dict_in({}, allow_empty=True) == {}
    for bad in ({}, [w], {"w": w, "step": 3}, {"model": [w]}):
        with pytest.raises(ValueError, match="^f.pt: expected a state dict"):
            state_dict_in(bad, ("model",), "f.pt")


def test_provenance_sha256_and_first_line(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(bytes(range(256)) * 5000)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == digest
    record = source_provenance(path, "x", licence="MIT")
    assert record == {"source": "x", "source_file": str(path.resolve()), "sha256": digest,
                      "loader": "torch.load(weights_only=True)", "licence": "MIT"}
    assert first_line(ValueError("a\nb")) == "a" and first_line(KeyError()) == "KeyError"
    assert first_line(ValueError("x" * 500), 300) == "x" * 300
