"""bfloat16 inference: ``Codec.to(torch.bfloat16)`` runs end to end, close to the float32 model."""

import pytest
import torch

from funcodec_lite import Codec, CodecConfig


@pytest.fixture(scope="module")
def codecs() -> tuple[Codec, Codec]:
    """A small SEANet codec with k-means codebooks (float32) and its bfloat16 copy."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before conftest's one-thread fixture
    try:
        return _build()
    finally:
        torch.set_num_threads(previous)


def _build() -> tuple[Codec, Codec]:
    torch.manual_seed(0)
    config = CodecConfig.from_dict({
        "sample_rate": 16000, "arch": "seanet", "domain": "time",
        "model": {"n_filters": 16, "ratios": [4, 4, 2], "dimension": 32, "lstm": 1},
        "quantizer": {"dim": 32, "n_q": 8, "codebook_size": 256, "kmeans_iters": 10},
    })
    fp32 = Codec(config)
    data = torch.randn(4, 1, 16000, generator=torch.Generator().manual_seed(0)) * 0.3
    with torch.no_grad():
        # Centre the random encoder's latents (a trained one's are), then k-means codebooks on 2000 frames.
        fp32.encoder.layers[-1].conv.bias -= fp32.encode_latent(data).mean(dim=(0, 2))
        fp32.train()(data)
    fp32.eval().fold_weight_norm()
    bf16 = Codec(config).eval()
    bf16.fold_weight_norm()
    bf16.load_state_dict(fp32.state_dict())
    return fp32, bf16.to(torch.bfloat16)


def _chirp() -> torch.Tensor:
    """0.5 s of a chirp plus noise, [2, 1, T] at 16 kHz, float32."""
    t = torch.arange(8000) / 16000
    noise = 0.05 * torch.randn(2, 1, t.numel(), generator=torch.Generator().manual_seed(10))
    return 0.4 * torch.sin(2 * torch.pi * (200 + 300 * t) * t) + noise


def test_bf16_codes_close_to_fp32(codecs):
    fp32, bf16 = codecs
    wav = _chirp()  # float32 input: the bf16 codec casts it
    with torch.inference_mode():
        reference = fp32.encode(wav)
        codes = bf16.encode(wav)
    assert codes.dtype == torch.long and codes.shape == reference.shape == (2, 8, 250)
    agreement = (codes == reference).float().mean(dim=(0, 2))
    # Measured 0.87 for the first codebook (0.84-0.89 over five seeds); later ones agree less (0.20 at 8).
    assert agreement[0].item() > 0.7
    assert agreement[0].item() > agreement[-1].item()


def test_bf16_decoder_snr(codecs):
    fp32, bf16 = codecs
    with torch.inference_mode():
        codes = fp32.encode(_chirp())
        reference = fp32.decode(codes).double()
        audio = bf16.decode(codes)
    assert audio.dtype == torch.bfloat16 and audio.shape == reference.shape
    snr = 10 * torch.log10(reference.square().sum() / (audio.double() - reference).square().sum())
    assert snr.item() > 30.0  # measured 48.8 dB (38-55 dB over five seeds)


def test_quantizer_searches_in_float32(codecs):
    _, bf16 = codecs
    latent = torch.randn(1, 32, 50, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    with torch.inference_mode():
        codes = bf16.quantizer.encode(latent)
        assert torch.equal(codes, bf16.quantizer.encode(latent.float()))
        assert bf16.quantizer.decode(codes).dtype == torch.float32
