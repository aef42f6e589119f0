"""Causal codecs stream: chunk-by-chunk output equals whole-signal output."""

import pytest
import torch

from funcodec_lite import Codec, CodecConfig
from funcodec_lite.inference.stream import StreamingDecoder, StreamingEncoder
from funcodec_lite.modules.conv import StreamableConv1d, StreamableConvTranspose1d


def _small_causal(lstm: int = 1, pad_mode: str = "reflect") -> Codec:
    torch.manual_seed(0)
    config = CodecConfig.from_dict({
        "sample_rate": 16000, "arch": "seanet", "domain": "time",
        "model": {"n_filters": 8, "ratios": [4, 4, 2], "dimension": 16, "lstm": lstm, "causal": True,
                  "n_residual_layers": 2, "pad_mode": pad_mode},
        "quantizer": {"dim": 16, "n_q": 4, "codebook_size": 64, "kmeans_iters": 5},
    })
    codec = Codec(config)
    data = torch.randn(8, 1, 16000) * 0.3
    with torch.no_grad():
        # A random encoder's latents sit on a large constant offset (the biases), which a trained one's
        # do not; remove it so that nearest-code search is not dominated by rounding of |x|^2.
        codec.encoder.layers[-1].conv.bias -= codec.encode_latent(data).mean(dim=(0, 2))
        codec.train()(data)  # k-means initialisation on 4000 frames: distinct, well-spread codes
    return codec.eval()


def _signal(length: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    return torch.randn(2, 1, length, generator=generator) * 0.3


@pytest.mark.parametrize("chunk,length", [(1, 401), (37, 3001), (32, 3001), (500, 3001), (4000, 3001)])
@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
def test_streaming_encoder_equals_whole(chunk, length, pad_mode):
    codec = _small_causal(pad_mode=pad_mode)
    wav = _signal(length)
    with torch.no_grad():
        whole_latent = codec.encode_latent(wav)
        whole = codec.encode(wav)
    with StreamingEncoder(codec) as stream:
        parts = [stream.push(wav[..., i:i + chunk]) for i in range(0, wav.shape[-1], chunk)]
        parts.append(stream.flush())
    streamed = torch.cat(parts, dim=-1)
    assert streamed.shape == whole.shape == (2, 4, -(-length // 32))
    assert (streamed == whole).float().mean().item() == 1.0
    with torch.no_grad(), codec.encoder.streaming():
        latents = [codec.encoder(wav[..., i:i + chunk]) for i in range(0, wav.shape[-1], chunk)]
        latents.append(codec.encoder.flush())
    torch.testing.assert_close(torch.cat(latents, -1), whole_latent, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunk", [1, 3, 10])
def test_streaming_decoder_equals_whole(chunk):
    codec = _small_causal()
    with torch.no_grad():
        codes = codec.encode(_signal(3200))
        whole = codec.decode(codes)
    with StreamingDecoder(codec) as stream:
        parts = [stream.push(codes[..., i:i + chunk]) for i in range(0, codes.shape[-1], chunk)]
        assert stream.flush().shape == (2, 1, 0)
    streamed = torch.cat(parts, dim=-1)
    assert streamed.shape == whole.shape == (2, 1, 3200)
    torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=1e-4)


def test_stream_can_be_reused_after_flush():
    codec = _small_causal()
    wav = _signal(1000)
    first = StreamingEncoder(codec)
    a = torch.cat([first.push(wav), first.flush()], -1)
    second = StreamingEncoder(codec)
    b = torch.cat([second.push(wav[..., :400]), second.push(wav[..., 400:]), second.flush()], -1)
    assert torch.equal(a, b)


def test_short_stream_shorter_than_padding():
    conv = StreamableConv1d(1, 2, 7, causal=True)
    x = torch.randn(1, 1, 4)
    with torch.no_grad():
        whole = conv(x)
        with conv.streaming():
            parts = [conv(x[..., :2]), conv(x[..., 2:]), conv.flush()]
    torch.testing.assert_close(torch.cat(parts, -1), whole)


def test_non_causal_refuses_to_stream():
    codec = Codec(CodecConfig.from_yaml("funcodec_ds320_16k"))
    with pytest.raises(ValueError, match="causal"):
        StreamingEncoder(codec)
    with pytest.raises(RuntimeError, match="causal"), StreamableConvTranspose1d(2, 2, 4, 2).streaming():
        pass
