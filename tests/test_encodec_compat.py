"""Weight compatibility with the `encodec` package: same weights → same codes and same audio."""

import pytest
import torch
from reference_libs import import_reference

encodec = import_reference("encodec")

from funcodec_lite import Codec  # noqa: E402
from funcodec_lite.convert import encodec_to_codec  # noqa: E402


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    ref = encodec.EncodecModel.encodec_model_24khz(pretrained=False).eval()
    wav = _test_signal()
    with torch.no_grad():
        frames = ref.encoder(wav).transpose(1, 2).reshape(-1, 128)
    mean, std = frames.mean(0), frames.std(0)
    # Random but realistic codebooks: layer 0 spreads around the latents, later layers around zero at
    # the shrinking scale of what is left to quantize.
    generator = torch.Generator().manual_seed(1)
    for i, layer in enumerate(ref.quantizer.vq.layers):
        book = layer._codebook
        noise = torch.randn(book.embed.shape, generator=generator) * std * 0.8**i
        book.embed.copy_(noise + (mean if i == 0 else 0))
        book.embed_avg.copy_(book.embed)
        book.inited.fill_(1.0)
    return ref, encodec_to_codec(ref.state_dict()), wav


def _test_signal() -> torch.Tensor:
    """1.5 s of a chirp plus noise, [2, 1, T] at 24 kHz, length not a multiple of the hop."""
    generator = torch.Generator().manual_seed(2)
    t = torch.arange(36_123) / 24_000
    chirp = 0.4 * torch.sin(2 * torch.pi * (200 + 900 * t) * t)
    noise = 0.05 * torch.randn(2, 1, t.numel(), generator=generator)
    return chirp + noise


@pytest.mark.parametrize("kbps,n_q", [(1.5, 2), (6.0, 8), (24.0, 32)])
def test_codes_equal_encodec(models, kbps, n_q):
    ref, ours, wav = models
    ref.set_target_bandwidth(kbps)
    with torch.no_grad():
        (ref_codes, scale), = ref.encode(wav)
        codes = ours.encode(wav, bandwidth=kbps)
    assert scale is None
    assert ours.n_q_for_bandwidth(kbps) == n_q
    assert codes.shape == ref_codes.shape == (2, n_q, 113)
    assert torch.equal(codes, ref_codes)
    # The codes are far from trivial: many distinct codes per layer.
    assert codes[:, 0].unique().numel() > 20


@pytest.mark.parametrize("kbps", [1.5, 24.0])
def test_decoder_matches_encodec(models, kbps):
    ref, ours, wav = models
    ref.set_target_bandwidth(kbps)
    with torch.no_grad():
        frames = ref.encode(wav)
        ref_audio = ref.decode(frames)
        audio = ours.decode(frames[0][0])
    assert audio.shape == ref_audio.shape == (2, 1, 113 * 320)
    assert (audio - ref_audio).abs().max().item() < 1e-4
    assert ref_audio.abs().max().item() > 1e-3  # not a silent comparison


def test_folded_weight_norm_keeps_codes(models):
    _, ours, wav = models
    folded = Codec(ours.config).eval()  # not deepcopy: copies share parametrized classes
    folded.load_state_dict(ours.state_dict())
    assert folded.fold_weight_norm() == 36  # every conv of the 24 kHz model
    assert not any("parametrizations" in k for k in folded.state_dict())
    with torch.no_grad():
        codes = ours.encode(wav, n_q=8)
        assert torch.equal(folded.encode(wav, n_q=8), codes)
        diff = (folded.decode(codes) - ours.decode(codes)).abs().max()
    assert diff.item() == 0.0  # folding computes the very weights the parametrization computes


def test_bad_state_dict_is_refused(models):
    ref, _, _ = models
    state = dict(ref.state_dict())
    state.pop("decoder.model.0.conv.conv.bias")
    with pytest.raises(ValueError, match="missing"):
        encodec_to_codec(state)
    with pytest.raises(ValueError, match="preset"):
        encodec_to_codec(ref.state_dict(), preset="encodec_48khz")
