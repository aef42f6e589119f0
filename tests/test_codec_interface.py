"""The one codec interface (``CompressionModel``): every user path (``load_model``, the ``codec`` commands,
the ``Tokenizer``, chunked coding, token files) drives any codec kind through it.

A test-only codec defines the contract in a few lines: 8-bit mu-law of each 4-sample frame's mean, plus a
4-bit codebook at half the frame rate (stride 2) for the residual's mean over two frames.  It is
registered as a codec kind with ``monkeypatch`` and saved as a model directory like any converted family.
Our ``Codec`` passes the same checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny_models import make_codec, tiny_config
from torch import nn

import funcodec_lite
from funcodec_lite.cli import main
from funcodec_lite.codec import kinds
from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.codec.loading import ModelError, load_model, model_id
from funcodec_lite.codec.model import Codec
from funcodec_lite.inference.chunking import ChunkConfig, decode_chunked, encode_chunked
from funcodec_lite.inference.tokenizer import Tokenizer
from funcodec_lite.inference.tokens import TokenFile, TokenFileError, load_tokens, save_tokens
from funcodec_lite.utils.weights import save_model_dir

KIND = "mulaw_test"
HOP = 4


@dataclass
class MuLawConfig:
    sample_rate: int = 8000
    mu: float = 255.0
    causal: bool = False


def _mulaw(x: torch.Tensor, levels: int, mu: float) -> torch.Tensor:
    y = torch.sign(x) * torch.log1p(mu * x.abs().clamp(max=1)) / math.log1p(mu)
    return ((y + 1) / 2 * (levels - 1)).round().clamp(0, levels - 1).long()


def _unmulaw(codes: torch.Tensor, levels: int, mu: float) -> torch.Tensor:
    y = codes.float() / (levels - 1) * 2 - 1
    return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu


class MuLawCodec(CompressionModel):
    """Codebook 0: 256 levels, one token per frame; codebook 1: 16 levels, one token per two frames."""

    model_kind = KIND
    config_class = MuLawConfig

    def __init__(self, config: MuLawConfig) -> None:
        super().__init__()
        self.config = config
        self.gain = nn.Parameter(torch.tensor([0.9]))

    sample_rate = property(lambda self: self.config.sample_rate)
    channels = property(lambda self: 1)
    samples_per_frame = property(lambda self: HOP)
    n_q = property(lambda self: 2)
    codebook_sizes = property(lambda self: (256, 16))
    codebook_strides = property(lambda self: (1, 2))
    is_causal = property(lambda self: self.config.causal)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        n_q = n_q or self.num_codebooks
        frames = self.num_frames(wav.shape[-1])
        x = nn.functional.pad(wav[:, 0] * self.gain, (0, -(-frames // 2) * 2 * HOP - wav.shape[-1]))
        means = x.reshape(x.shape[0], -1, HOP).mean(-1)  # [B, 2·ceil(N/2)]
        first = _mulaw(means, 256, self.config.mu)
        rest = (means - _unmulaw(first, 256, self.config.mu)).reshape(x.shape[0], -1, 2).mean(-1)
        second = _mulaw(rest * 8, 16, self.config.mu).repeat_interleave(2, dim=-1)
        return torch.stack([first, second], dim=1)[:, :n_q, :frames]

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        self.check_codes(codes)
        value = _unmulaw(codes[:, 0], 256, self.config.mu)
        if codes.shape[1] > 1:
            value = value + _unmulaw(codes[:, 1], 16, self.config.mu) / 8
        wav = (value / self.gain).repeat_interleave(HOP, dim=-1)[:, None]
        return wav[..., :length] if length is not None else wav

    def streaming_encoder(self, n_q: int | None = None) -> _Stream:
        if not self.is_causal:
            return super().streaming_encoder(n_q)
        return _Stream(lambda x: self.encode(x, n_q), 2 * HOP, n_q or self.num_codebooks)

    def streaming_decoder(self) -> _Stream:
        if not self.is_causal:
            return super().streaming_decoder()
        return _Stream(self.decode, 2, None)


class _Stream:
    """Holds input back until whole two-frame groups have arrived; ``flush`` codes the rest."""

    def __init__(self, run, unit: int, n_q: int | None) -> None:
        self.run, self.unit, self.n_q, self.held = run, unit, n_q, None

    def push(self, x: torch.Tensor) -> torch.Tensor:
        self.held = x if self.held is None else torch.cat([self.held, x], dim=-1)
        cut = self.held.shape[-1] // self.unit * self.unit
        out, self.held = self.run(self.held[..., :cut]), self.held[..., cut:]
        return out

    def flush(self) -> torch.Tensor:
        out = self.run(self.held)
        self.held = None
        return out


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(kinds.CODEC_KINDS, KIND, __name__)


@pytest.fixture
def mulaw_dir(tmp_path, registered):
    save_model_dir(tmp_path / "mulaw", MuLawCodec(MuLawConfig()), {"made": "test"})
    return tmp_path / "mulaw"


def _signal(length: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 1, length, generator=generator) * 0.3).clamp(-1, 1)


def _naive_mulaw(wav: np.ndarray) -> np.ndarray:
    """The test codec's codes, computed frame by frame in float64 numpy (tie-free on random signals)."""
    def law(x, levels):
        y = np.sign(x) * np.log1p(255 * min(abs(x), 1)) / np.log1p(255)
        return int(np.clip(np.round((y + 1) / 2 * (levels - 1)), 0, levels - 1))

    def unlaw(c, levels):
        y = c / (levels - 1) * 2 - 1
        return np.sign(y) * np.expm1(abs(y) * np.log1p(255)) / 255

    frames = -(-len(wav) // HOP)
    x = np.zeros(-(-frames // 2) * 2 * HOP)
    x[: len(wav)] = wav.astype(np.float64) * np.float32(0.9)
    means = x.reshape(-1, HOP).mean(-1)
    first = [law(m, 256) for m in means]
    rest = [(means[2 * j] - unlaw(first[2 * j], 256) + means[2 * j + 1] - unlaw(first[2 * j + 1], 256)) / 2
            for j in range(len(means) // 2)]
    second = np.repeat([law(r * 8, 16) for r in rest], 2)
    return np.stack([first, second])[:, :frames]


# ---------------------------------------------------------------------------------------------------------
# The interface's numbers and layouts
def test_numbers_of_a_multi_rate_codec():
    codec = MuLawCodec(MuLawConfig())
    assert codec.frame_rate == 2000.0 and codec.codebook_size == 256 and codec.frame_alignment == 2
    assert codec.bandwidth(1) == 16.0  # 8 bits x 2000 frames/s
    assert codec.bandwidth(2) == 20.0  # + 4 bits per two frames
    assert codec.bandwidth() == 20.0
    assert [codec.n_q_for_bandwidth(k) for k in (1.0, 16.0, 19.9, 20.0, 64.0)] == [1, 1, 1, 2, 2]
    assert [codec.num_frames(n) for n in (0, 1, 4, 5, 9)] == [0, 1, 1, 2, 3]
    with pytest.raises(ValueError, match="do not stream"):
        codec.streaming_encoder()


def test_codes_equal_a_naive_implementation_and_decode_inverts_them():
    codec = MuLawCodec(MuLawConfig())
    wav = _signal(37, batch=3)
    codes = codec.encode(wav)
    assert codes.shape == (3, 2, 10) and codes.dtype == torch.long
    for item in range(3):
        np.testing.assert_array_equal(codes[item].numpy(), _naive_mulaw(wav[item, 0].numpy()))
    assert (codes[:, 1, 0::2] == codes[:, 1, 1::2]).all()  # one token per two frames
    back = codec.decode(codes, length=37)
    frame_means = nn.functional.pad(wav, (0, 3)).reshape(3, 1, 10, HOP).mean(-1)
    error = (back[..., :36].reshape(3, 1, 9, HOP)[..., 0] - frame_means[..., :9]).abs().max().item()
    assert back.shape == (3, 1, 37) and error < 0.02  # 8-bit mu-law of the frame means, then refined


def test_split_join_and_set_num_codebooks():
    codec = MuLawCodec(MuLawConfig())
    codes = codec.encode(_signal(40))
    levels = codec.split_codes(codes)
    assert [level.shape for level in levels] == [(2, 10), (2, 5)]
    assert torch.equal(codec.join_codes(levels), codes)
    codec.set_num_codebooks(1)
    assert codec.num_codebooks == 1 and codec.encode(_signal(40)).shape == (2, 1, 10)
    assert codec.bandwidth() == 16.0
    with pytest.raises(ValueError, match="num_codebooks must be in 1..2"):
        codec.set_num_codebooks(3)
    with pytest.raises(ValueError, match=r"codes out of range for codebook sizes \(256, 16\)"):
        codec.decode(torch.full((1, 2, 4), 16))


# ---------------------------------------------------------------------------------------------------------
# The registry and the model directory
def test_load_model_returns_the_registered_kind(mulaw_dir):
    codec = load_model(mulaw_dir)
    assert isinstance(codec, MuLawCodec) and not codec.training
    assert torch.equal(codec.gain, torch.tensor([0.9]))
    again = MuLawCodec(MuLawConfig())
    assert model_id(codec) == model_id(again)
    changed = MuLawCodec(MuLawConfig(mu=100.0))
    assert model_id(changed) != model_id(again)
    assert funcodec_lite.model_class(KIND) is MuLawCodec
    assert isinstance(funcodec_lite.load_model_dir(mulaw_dir), MuLawCodec)


def test_a_kind_whose_module_is_missing_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(kinds.CODEC_KINDS, KIND, "funcodec_lite.codec.families.not_written_yet")
    with pytest.raises(kinds.CodecKindError, match="not available in this installation"):
        kinds.codec_class(KIND)
    monkeypatch.setitem(kinds.CODEC_KINDS, KIND, __name__)
    save_model_dir(tmp_path / "m", MuLawCodec(MuLawConfig()))
    monkeypatch.setitem(kinds.CODEC_KINDS, KIND, "funcodec_lite.codec.families.not_written_yet")
    with pytest.raises(ModelError, match=f"codec kind '{KIND}' is not available"):
        load_model(tmp_path / "m")
    monkeypatch.delitem(kinds.CODEC_KINDS, KIND)
    with pytest.raises(ModelError, match=f"a {KIND} model directory, not a codec"):
        load_model(tmp_path / "m")
    assert "codec" in kinds.available_codec_kinds()


def test_the_cli_refuses_an_unavailable_kind_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(kinds.CODEC_KINDS, KIND, __name__)
    save_model_dir(tmp_path / "m", MuLawCodec(MuLawConfig()))
    sf.write(tmp_path / "a.wav", np.zeros(100, dtype=np.float32), 8000)
    monkeypatch.setitem(kinds.CODEC_KINDS, KIND, "funcodec_lite.codec.families.not_written_yet")
    code = main(["encode", str(tmp_path / "a.wav"), str(tmp_path / "a.npz"), "--model", str(tmp_path / "m"),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not available" in err
    assert not (tmp_path / "a.npz").exists()


# ---------------------------------------------------------------------------------------------------------
# Chunked coding, the Tokenizer and the commands on the test codec
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length", [3, 37, 401])
def test_chunked_equals_whole(causal, length):
    codec = MuLawCodec(MuLawConfig(causal=causal))
    wav = _signal(length)
    chunk = ChunkConfig(chunk_seconds=0.0025, context_seconds=0.001)  # 5 frames -> 6, context 2 frames
    assert chunk.frames(codec) == (6, 2)
    whole = codec.encode(wav)
    assert torch.equal(encode_chunked(codec, wav, config=chunk), whole)
    assert torch.equal(encode_chunked(codec, wav, n_q=1, config=chunk), whole[:, :1])
    assert torch.equal(decode_chunked(codec, whole, config=chunk), codec.decode(whole))


def test_tokenizer_from_pretrained_is_exact(mulaw_dir):
    tokenizer = Tokenizer.from_pretrained(mulaw_dir)
    codec = tokenizer.codec
    assert tokenizer.codebook_sizes == (256, 16) and tokenizer.codebook_strides == (1, 2)
    assert (tokenizer.frame_rate, tokenizer.total_codebooks, tokenizer.num_codebooks) == (2000.0, 2, 2)
    items = [_signal(n, batch=1, seed=n)[0] for n in (37, 8, 101)]
    codes, lengths = tokenizer.encode(items, sample_rate=8000)
    assert lengths.tolist() == [10, 2, 26] and codes.shape == (3, 2, 26)
    for item, n, row in zip(items, lengths.tolist(), codes):
        assert torch.equal(row[:, :n], codec.encode(item[None])[0])
    wav, samples = tokenizer.decode(codes, lengths)
    assert samples.tolist() == [40, 8, 104]
    for i, n in enumerate(lengths.tolist()):
        assert torch.equal(wav[i, :, : n * HOP], codec.decode(codes[i : i + 1, :, :n])[0])
    tokenizer.set_num_codebooks(1)
    assert tokenizer.encode(items, sample_rate=8000).codes.shape == (3, 1, 26)
    with pytest.raises(ValueError, match=r"out of range for codebook sizes \[256, 16\]"):
        tokenizer.decode(torch.full((1, 2, 3), 20))
    with pytest.raises(ValueError, match="needs a funcodec_lite Codec"):
        _ = tokenizer.embedding_dim


def test_encode_decode_tokenize_commands(mulaw_dir, tmp_path, capsys):
    wav = _signal(1001, batch=1)[0]
    sf.write(tmp_path / "a.wav", wav[0].numpy(), 8000, subtype="FLOAT")
    model = ["--model", str(mulaw_dir), "--device", "cpu"]
    assert main(["encode", str(tmp_path / "a.wav"), str(tmp_path / "a.npz"), *model,
                 "--chunk-seconds", "0.01", "--context-seconds", "0.002"]) == 0
    tokens = load_tokens(tmp_path / "a.npz")
    codec = load_model(mulaw_dir)
    expected = codec.encode(wav[None])
    assert torch.equal(torch.from_numpy(tokens.codes.astype(np.int64)), expected)
    assert (tokens.codebook_size, tokens.codebook_sizes, tokens.codebook_strides) == (256, (256, 16), (1, 2))
    assert tokens.kbps == 20.0 and tokens.model_id == model_id(codec)
    assert main(["encode", str(tmp_path / "a.wav"), str(tmp_path / "b.npz"), *model,
                 "--bandwidth", "19"]) == 0
    one = load_tokens(tmp_path / "b.npz")
    assert one.n_q == 1 and one.codebook_sizes is None and one.codebook_strides is None and one.kbps == 16.0
    assert main(["decode", str(tmp_path / "a.npz"), str(tmp_path / "back.wav"), *model,
                 "--subtype", "FLOAT", "--chunk-seconds", "0.01"]) == 0
    back, rate = sf.read(tmp_path / "back.wav", dtype="float32")
    assert rate == 8000 and back.shape == (1001,)
    np.testing.assert_array_equal(back, codec.decode(expected, length=1001)[0, 0].numpy())
    (tmp_path / "wav.scp").write_text(f"utt1 {tmp_path / 'a.wav'}\n")
    assert main(["tokenize", "--scp", str(tmp_path / "wav.scp"), "--out-dir", str(tmp_path / "tok"),
                 *model, "-q"]) == 0
    assert np.array_equal(load_tokens(tmp_path / "tok" / "utt1.npz").codes, tokens.codes)
    capsys.readouterr()
    assert main(["info", str(mulaw_dir), "--json"]) == 0
    info = capsys.readouterr().out
    assert '"codebook_strides": [\n    1,\n    2\n  ]' in info and '"kbps_max": 20.0' in info


def test_token_files_check_each_codebook(tmp_path):
    codes = np.zeros((1, 2, 4), dtype=np.int16)
    codes[0, 1, 0] = 16  # within codebook_size 256, not within codebook 1's 16
    tokens = TokenFile(codes=codes, sample_rate=8000, num_samples=16, num_channels=1, frame_rate=2000.0,
                       codebook_size=256, model_id="x", codebook_sizes=(256, 16), codebook_strides=(1, 2))
    with pytest.raises(TokenFileError, match="found 16 in codebook 1, whose size is 16"):
        save_tokens(tmp_path / "t.npz", tokens)
    codes[0, 1, 0] = 15
    save_tokens(tmp_path / "t.npz", tokens)
    assert load_tokens(tmp_path / "t.npz").codebook_strides == (1, 2)
    tokens.codebook_strides = (1, 2, 2)
    with pytest.raises(TokenFileError, match="codebook_strides must hold 2 values"):
        save_tokens(tmp_path / "t.npz", tokens)


# ---------------------------------------------------------------------------------------------------------
# Our Codec through the same interface
def test_our_codec_is_a_compression_model():
    codec = make_codec(tiny_config(causal=True, n_q=4))
    assert isinstance(codec, CompressionModel) and codec.is_causal
    assert codec.codebook_sizes == (32,) * 4 and codec.codebook_strides == (1,) * 4
    assert codec.frame_alignment == 1 and codec.bandwidth(2) == 2 * 5 * 1000 / 1000
    assert codec.n_q_for_bandwidth(15.0) == 3 and codec.num_frames(17) == 2
    wav = _signal(1000)
    whole = codec.encode(wav)
    with codec.streaming_encoder() as stream:
        parts = [stream.push(wav[..., i : i + 77]) for i in range(0, 1000, 77)] + [stream.flush()]
    assert torch.equal(torch.cat(parts, dim=-1), whole)
    with codec.streaming_decoder() as stream:
        audio = torch.cat([stream.push(whole[..., i : i + 5]) for i in range(0, whole.shape[-1], 5)]
                          + [stream.flush()], dim=-1)
    torch.testing.assert_close(audio, codec.decode(whole), atol=1e-5, rtol=1e-5)
    assert torch.equal(codec.join_codes(codec.split_codes(whole)), whole)
    codec.set_num_codebooks(2)
    assert codec.encode(wav).shape == (2, 2, whole.shape[-1]) and torch.equal(codec.encode(wav), whole[:, :2])
    with codec.streaming_encoder() as stream:
        assert stream.push(wav).shape[1] == 2
    assert codec.bandwidth() == 2 * 5 * 1000 / 1000
    non_causal = make_codec(tiny_config())
    assert not non_causal.is_causal
    with pytest.raises(ValueError, match="only causal time-domain codecs"):
        non_causal.streaming_encoder()


def test_our_codecs_load_as_before(tmp_path):
    codec = make_codec(tiny_config())
    codec.save_pretrained(tmp_path / "c")
    loaded = load_model(tmp_path / "c")
    assert type(loaded) is Codec and model_id(loaded) == model_id(codec)
