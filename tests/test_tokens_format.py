"""The .npz token format: round trip, and every kind of bad file refused with a message naming it."""

import zipfile

import numpy as np
import pytest

from funcodec_lite.inference.tokens import (
    FORMAT_VERSION,
    TokenFile,
    TokenFileError,
    load_tokens,
    read_model_id,
    save_tokens,
)


def _tokens(**overrides) -> TokenFile:
    codes = np.arange(2 * 3 * 5, dtype=np.int16).reshape(2, 3, 5) % 16
    fields = {"codes": codes, "sample_rate": 44100, "num_samples": 1234, "num_channels": 2,
              "frame_rate": 50.0, "codebook_size": 16, "model_id": "0123456789abcdef"}
    fields.update(overrides)
    return TokenFile(**fields)


def _fields(tokens: TokenFile) -> dict:
    return {"codes": tokens.codes, "sample_rate": np.int64(tokens.sample_rate),
            "num_samples": np.int64(tokens.num_samples), "num_channels": np.int64(tokens.num_channels),
            "frame_rate": np.float64(tokens.frame_rate), "codebook_size": np.int64(tokens.codebook_size),
            "model_id": np.array(tokens.model_id), "format_version": np.int64(FORMAT_VERSION)}


def test_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "x.npz"
    save_tokens(path, _tokens())
    back = load_tokens(path)
    assert back.codes.dtype == np.int16 and back.codes.shape == (2, 3, 5)
    assert np.array_equal(back.codes, _tokens().codes)
    assert (back.sample_rate, back.num_samples, back.num_channels) == (44100, 1234, 2)
    assert (back.frame_rate, back.codebook_size, back.model_id) == (50.0, 16, "0123456789abcdef")
    assert back.format_version == FORMAT_VERSION == 1
    assert back.kbps == pytest.approx(3 * 4 * 50 / 1000) and back.duration == pytest.approx(1234 / 44100)
    assert read_model_id(path) == "0123456789abcdef"
    with np.load(path, allow_pickle=False) as archive:  # plain arrays: readable without this package
        assert sorted(archive.files) == sorted(_fields(back))
        assert archive["model_id"].dtype.kind == "U"


def test_empty_codes_are_valid(tmp_path):
    empty = _tokens(codes=np.zeros((1, 4, 0), np.int16), num_samples=0, num_channels=1)
    save_tokens(tmp_path / "e.npz", empty)
    assert load_tokens(tmp_path / "e.npz").frames == 0


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("case,message", [
    ("missing", "no such file"),
    ("directory", "is a directory"),
    ("empty", "empty"),
    ("text", "cannot read it as .npz"),
    ("truncated", "cannot read it as .npz"),
    ("npy", "single .npy array"),
    ("foreign", "missing field(s) codes"),
    ("object", "corrupt token file"),
    ("pickled_id", "corrupt token file"),
    ("float_codes", "codes must be int16"),
    ("shape", "codes must have shape"),
    ("range", "codes out of range: found 16, codebook_size is 16"),
    ("negative", "codes out of range: found -1"),
    ("version", "format_version 7 is not supported"),
    ("rate", "bad audio description"),
    ("id_type", "model_id must be a text scalar"),
    ("scalar_shape", "field sample_rate must be a int scalar"),
])
def test_bad_files_are_refused(tmp_path, case, message):
    path = tmp_path / f"{case}.npz"
    good = _fields(_tokens())
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("hello, not an archive\n")
    elif case == "truncated":
        _write(path, **good)
        path.write_bytes(path.read_bytes()[:200])
    elif case == "npy":
        np.save(open(path, "wb"), np.zeros(3))
    elif case == "foreign":
        _write(path, weights=np.zeros(3), labels=np.arange(4))
    elif case == "object":
        np.savez(path, **{**good, "codes": np.array([[1, 2], [3]], dtype=object)})
    elif case == "pickled_id":
        np.savez(path, **{**good, "model_id": np.array({"a": 1}, dtype=object)})
    elif case == "float_codes":
        _write(path, **{**good, "codes": good["codes"].astype(np.float32)})
    elif case == "shape":
        _write(path, **{**good, "codes": good["codes"][0]})
    elif case == "range":
        _write(path, **{**good, "codes": good["codes"] + 1})
    elif case == "negative":
        _write(path, **{**good, "codes": good["codes"] - 1})
    elif case == "version":
        _write(path, **{**good, "format_version": np.int64(7)})
    elif case == "rate":
        _write(path, **{**good, "sample_rate": np.int64(0)})
    elif case == "id_type":
        _write(path, **{**good, "model_id": np.int64(5)})
    elif case == "scalar_shape":
        _write(path, **{**good, "sample_rate": np.array([16000, 16000])})
    with pytest.raises(TokenFileError) as info:
        load_tokens(path)
    assert str(path) in str(info.value) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_corrupt_member_is_refused(tmp_path):
    path = _write(tmp_path / "c.npz", **_fields(_tokens()))
    data = bytearray(path.read_bytes())
    start = data.find(b"codes.npy")
    data[start + 80 : start + 120] = b"\xff" * 40  # inside the codes member: CRC / header no longer valid
    path.write_bytes(bytes(data))
    with pytest.raises(TokenFileError, match="c.npz"):
        load_tokens(path)
    assert zipfile.is_zipfile(path)  # still looks like a zip: the member check caught it


def test_writer_validates_and_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(TokenFileError, match="codes must be int16"):
        save_tokens(tmp_path / "a.npz", _tokens(codes=np.zeros((1, 1, 2), np.int64)))
    with pytest.raises(TokenFileError, match="more streams|code streams"):
        save_tokens(tmp_path / "a.npz", _tokens(num_channels=1))
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(TokenFileError, match="cannot write"):
        save_tokens(blocked / "a.npz", _tokens())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
