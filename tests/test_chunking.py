"""Long signals in chunks: exact for causal models, measured for non-causal ones, bounded memory."""

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny_models import make_codec, speechlike, tiny_config, tiny_freq_config

from funcodec_lite.audio.blocks import BlockResampler, read_blocks
from funcodec_lite.audio.filters import sinc_resample
from funcodec_lite.inference.chunking import ChunkConfig, decode_chunked, encode_chunked, frames_for_length
from funcodec_lite.inference.filecoding import encode_file
from funcodec_lite.metrics import si_snr

CHUNK = ChunkConfig(chunk_seconds=0.25, context_seconds=0.05)  # 1000 / 4000 = 250 frames, 13 of context


@pytest.fixture(scope="module")
def signal():
    return speechlike(2.3, 16000, channels=2)[:, None]  # [2 streams, 1, T]: two mono items


@pytest.mark.parametrize("lstm", [0, 2])
def test_causal_chunked_codes_equal_whole_file(signal, lstm):
    codec = make_codec(tiny_config(causal=True, lstm=lstm))
    with torch.no_grad():
        whole = codec.encode(signal)
        whole_audio = codec.decode(whole)
    chunked = encode_chunked(codec, signal, config=CHUNK)
    assert chunked.shape == whole.shape == (2, 4, frames_for_length(codec, signal.shape[-1])) == (2, 4, 2300)
    assert torch.equal(chunked, whole)
    assert whole[:, 0].unique().numel() > 10  # not a trivial code sequence
    audio = decode_chunked(codec, whole, config=CHUNK)
    assert audio.shape == whole_audio.shape
    assert (audio - whole_audio).abs().max().item() < 1e-5


def test_noncausal_conv_model_with_enough_context_is_exact(signal):
    """Without LSTM or GroupNorm, a frame depends on a bounded window; the context covers it."""
    codec = make_codec(tiny_config(causal=False, lstm=0))
    with torch.no_grad():
        whole = codec.encode(signal)
    assert torch.equal(encode_chunked(codec, signal, config=CHUNK), whole)
    # with no context at all, frames next to each chunk boundary change
    no_context = encode_chunked(codec, signal, config=ChunkConfig(0.25, 0.0))
    differ = (no_context != whole).any(dim=1).float().mean().item()
    assert 0.01 < differ < 0.05  # measured: 2.9% of the frames


def test_noncausal_groupnorm_lstm_model_effect_is_small(signal):
    """The scheme's effect on a model whose frames see the whole signal (GroupNorm statistics, LSTM state):
    most codes are unchanged and the decoded audio is close to whole-file decoding."""
    codec = make_codec(tiny_config(causal=False, lstm=1, norm="time_group_norm"))
    with torch.no_grad():
        whole = codec.encode(signal)
        reference = codec.decode(whole)
    chunked = encode_chunked(codec, signal, config=CHUNK)
    same = (chunked == whole).float().mean().item()
    first_layer_same = (chunked[:, 0] == whole[:, 0]).float().mean().item()
    assert chunked.shape == whole.shape
    assert same > 0.90 and first_layer_same > 0.96  # measured: 92.4% and 98.2%
    audio = decode_chunked(codec, chunked, config=CHUNK)
    # decoded chunked codes against decoded whole-file codes: far from independent signals
    assert si_snr(reference, audio).min().item() > 17.0  # measured: 19.9 and 20.5 dB


def test_freqcodec_chunks_align_with_whole_file(signal):
    codec = make_codec(tiny_freq_config())
    with torch.no_grad():
        whole = codec.encode(signal)
    chunked = encode_chunked(codec, signal, config=ChunkConfig(0.1, 0.02))
    assert chunked.shape == whole.shape == (2, 4, frames_for_length(codec, signal.shape[-1]))
    assert (chunked == whole).float().mean().item() == 1.0  # conv-only: exact with context


@pytest.mark.parametrize("length", [33, 47, 48, 49, 1000, 16001])
def test_frames_for_length_matches_encode(length):
    for codec in (make_codec(tiny_config()), make_codec(tiny_freq_config())):
        with torch.no_grad():
            codes = codec.encode(torch.zeros(1, 1, length))
        assert codes.shape[-1] == frames_for_length(codec, length)
        assert encode_chunked(codec, torch.zeros(1, 1, length)).shape[-1] == codes.shape[-1]
    assert frames_for_length(codec, 0) == 0


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 32])
def test_shorter_than_a_frame_or_an_stft_window(length):
    """A centred STFT cannot take fewer than n_fft / 2 + 1 samples; such windows are zero-padded."""
    for codec in (make_codec(tiny_config()), make_codec(tiny_freq_config())):
        wav = speechlike(length / 16000, 16000)[None]
        codes = encode_chunked(codec, wav)
        frames = -(-length // 16) if codec.config.arch == "seanet" else -(-(length // 16 + 1) // 2)
        assert codes.shape == (1, 4, frames_for_length(codec, length)) == (1, 4, frames if length else 0)
        audio = decode_chunked(codec, codes, length)
        assert audio.shape == (1, 1, length)
        if not length:
            continue
        # the same codes as encoding the clip whole: as it is (SEANet), or zero-padded to the 33 samples
        # a centred 64-point STFT needs (FreqCodec), with the padding's extra frames cut
        shortest = 1 if codec.config.arch == "seanet" else 64 // 2 + 1
        padded = torch.nn.functional.pad(wav, (0, max(0, shortest - length)))
        with torch.no_grad():
            assert torch.equal(codes, codec.encode(padded)[..., :frames])
            torch.testing.assert_close(audio, codec.decode(codes)[..., :length], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("orig,new", [(44100, 16000), (8000, 16000), (96000, 16000), (22050, 24000)])
def test_block_resampler_equals_whole_signal_resampling(orig, new):
    x = torch.randn(2, orig // 3 + 17, generator=torch.Generator().manual_seed(0))
    expected = sinc_resample(x, orig, new)
    for block in (997, 5000, 100000):
        resampler = BlockResampler(orig, new)
        parts = [resampler.push(x[:, i : i + block]) for i in range(0, x.shape[-1], block)]
        out = torch.cat(parts + [resampler.flush()], dim=-1)
        assert out.shape == expected.shape
        torch.testing.assert_close(out, expected, atol=2e-6, rtol=0)


def test_long_file_memory_is_bounded_by_the_chunk(tmp_path, monkeypatch):
    """The reader never asks for more than one block, the model never sees more than one window, and the
    numpy memory of reading does not grow with the file's length."""
    import tracemalloc

    codec = make_codec(tiny_config())
    windows, reads = [], []
    encode = codec.encode
    monkeypatch.setattr(codec, "encode",
                        lambda wav, n_q=None: windows.append(wav.shape[-1]) or encode(wav, n_q))
    original_read = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        reads.append(frames)
        return original_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    peaks = {}
    for seconds in (3, 30):
        path = tmp_path / f"{seconds}.wav"
        with sf.SoundFile(path, "w", 44100, 2, "PCM_16") as out:
            for _ in range(seconds):
                out.write(np.tile(np.sin(np.arange(44100) / 7.0)[:, None] * 0.5, (1, 2)))
        windows.clear()
        tracemalloc.start()
        tokens = encode_file(codec, path, None, chunk=ChunkConfig(0.5, 0.05))
        peaks[seconds] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert tokens.frames == seconds * 1000 and tokens.streams == 2
        assert max(windows) <= (0.5 + 2 * 0.05) * 16000 + 16
    assert max(reads) == round(0.5 * 44100)
    assert peaks[30] < 1.5 * peaks[3] + 2e5  # ten times the audio, about the same peak


def test_read_blocks_reports_nan_position(tmp_path):
    data = np.zeros((1000, 1), np.float32)
    data[700] = np.nan
    sf.write(tmp_path / "nan.wav", data, 8000, subtype="FLOAT")
    blocks = read_blocks(tmp_path / "nan.wav", 256)
    assert next(blocks).shape == (1, 256)
    with pytest.raises(ValueError, match="NaN or Inf samples \\(first at sample 700\\)"):
        list(blocks)


def test_an_error_mid_file_closes_the_causal_stream(tmp_path):
    codec = make_codec(tiny_config(causal=True, lstm=1))
    data = np.zeros(16000, np.float32)
    data[12000] = np.inf  # in the third block of 0.25 s
    sf.write(tmp_path / "inf.wav", data, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match="NaN or Inf samples \\(first at sample 12000\\)"):
        encode_file(codec, tmp_path / "inf.wav", None, chunk=ChunkConfig(0.25, 0.05))
    assert not codec.encoder.is_streaming
    with torch.no_grad():
        assert encode_chunked(codec, torch.ones(1, 1, 100) * 0.1).shape == (1, 4, 7)
