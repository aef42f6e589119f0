"""The test-only torchaudio stand-in of tests/reference_libs.py: torchaudio's numbers where torchaudio loads,
the formulas everywhere, and no leak: encodec gets it, nothing else does."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from reference_libs import (
    InverseSpectrogram,
    Resample,
    Spectrogram,
    import_reference,
    is_standin,
    load,
    save,
    torchaudio_standin,
)

# encodec's msstftd settings first (normalized, uncentred, complex), then torchaudio's other options
SPECTROGRAMS = [
    dict(n_fft=512, hop_length=128, win_length=512, window_fn=torch.hann_window, normalized=True,
         center=False, pad_mode=None, power=None),
    dict(n_fft=1024, hop_length=256, normalized=True, center=False, pad_mode=None, power=None),
    dict(),
    dict(n_fft=256, win_length=200, hop_length=64, power=1.0, normalized="frame_length"),
    dict(n_fft=128, pad=7, power=None, normalized="window", pad_mode="constant", onesided=False),
    dict(n_fft=64, window_fn=torch.hamming_window, wkwargs={"periodic": False}, power=2.0, center=False),
]


def _wav(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("options", SPECTROGRAMS)
def test_spectrogram_equals_torchaudio(options):
    torchaudio = import_reference("torchaudio")
    assert not is_standin(torchaudio)
    wav = _wav(2, 1, 4500)
    ref, ours = torchaudio.transforms.Spectrogram(**options), Spectrogram(**options)
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["window"]
    expected, got = ref(wav), ours(wav)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("normalized,pad,length", [(False, 0, None), (False, 0, 4321), (True, 0, 4500),
                                                    ("frame_length", 3, 4400)])
def test_inverse_spectrogram_equals_torchaudio(normalized, pad, length):
    """FunCodec's FreqCodec decodes with InverseSpectrogram: the stand-in's must be torchaudio's."""
    torchaudio = import_reference("torchaudio")
    assert not is_standin(torchaudio)
    options = {"n_fft": 512, "hop_length": 160, "pad": pad, "normalized": normalized}
    spectrum = torchaudio.transforms.Spectrogram(power=None, **options)(_wav(2, 1, 4500))
    ref, ours = torchaudio.transforms.InverseSpectrogram(**options), InverseSpectrogram(**options)
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["window"]
    expected, got = ref(spectrum, length), ours(spectrum, length)
    assert got.shape == expected.shape and expected.shape[-1] > 4000
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("orig,new", [(48000, 24000), (44100, 24000), (16000, 24000), (24000, 24000)])
def test_resample_equals_torchaudio(orig, new):
    torchaudio = import_reference("torchaudio")
    wav = _wav(2, 9001)
    torch.testing.assert_close(Resample(orig, new)(wav), torchaudio.transforms.Resample(orig, new)(wav),
                               rtol=0, atol=0)


def test_encodec_spectrogram_is_the_windowed_dft_over_the_window_norm():
    """Everywhere (no torchaudio needed): encodec's settings give frame t = x[t*hop : t*hop + n_fft],
    times the periodic Hann window, DFT bins 0..n_fft/2, divided by sqrt(sum(window^2))."""
    n_fft, hop = 256, 64
    wav = _wav(3, 1000, seed=1).double()
    spec = Spectrogram(n_fft=n_fft, hop_length=hop, win_length=n_fft, window_fn=torch.hann_window,
                       normalized=True, center=False, pad_mode=None, power=None,
                       wkwargs={"dtype": torch.float64})(wav).numpy()  # float64 end to end
    x = wav.numpy()
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = 1 + (x.shape[-1] - n_fft) // hop
    starts = hop * np.arange(frames)
    windowed = np.stack([x[:, s:s + n_fft] * window for s in starts], axis=-1)  # [3, n_fft, frames]
    k, n = np.arange(n_fft // 2 + 1)[:, None], np.arange(n_fft)[None]
    dft = np.exp(-2j * np.pi * k * n / n_fft)
    expected = np.einsum("kn,bnt->bkt", dft, windowed) / np.sqrt((window**2).sum())
    assert spec.shape == expected.shape == (3, n_fft // 2 + 1, frames)
    assert np.abs(spec - expected).max() < 1e-12


def test_resample_and_audio_files(tmp_path):
    wav = 0.5 * torch.sin(torch.arange(4800) / 5.0).repeat(2, 1)
    assert torch.equal(Resample(24000, 24000)(wav), wav)
    assert Resample(48000, 24000)(wav).shape == (2, 2400)
    with pytest.raises(NotImplementedError):
        Resample(48000, 24000, lowpass_filter_width=16)
    save(tmp_path / "a.wav", wav, sample_rate=24000, encoding="PCM_S", bits_per_sample=16)  # as encodec
    back, rate = load(tmp_path / "a.wav")
    assert rate == 24000 and back.shape == wav.shape
    assert (back - wav).abs().max().item() <= 2**-15
    with pytest.raises(NotImplementedError):
        save(tmp_path / "b.wav", wav, sample_rate=24000, encoding="ULAW", bits_per_sample=8)


def test_standin_offers_only_what_the_reference_packages_use():
    module = torchaudio_standin()
    assert is_standin(module) and module.__name__ == "torchaudio"
    assert {k for k in vars(module) if not k.startswith("_")} == {"transforms", "load", "save"}
    offered = {k for k in vars(module.transforms) if not k.startswith("_")}
    assert offered == {"Spectrogram", "InverseSpectrogram", "Resample"}


def test_encodec_imports_through_the_standin_and_nothing_else_sees_it():
    """In a fresh interpreter whose torchaudio fails to load as in CI (its compiled extension raises
    OSError), encodec and encodec.msstftd import with the stand-in and run; `import torchaudio` still
    fails, and import_reference("torchaudio") skips rather than hand out the stand-in."""
    script = textwrap.dedent("""
        import importlib.abc, importlib.machinery, sys
        import pytest, torch

        class Broken(importlib.abc.MetaPathFinder, importlib.abc.Loader):
            def find_spec(self, fullname, path, target=None):
                if fullname == "torchaudio._extension":
                    return importlib.machinery.ModuleSpec(fullname, self)
            def create_module(self, spec):
                return None
            def exec_module(self, module):
                raise OSError("libtorchaudio.so: undefined symbol (simulated)")

        sys.meta_path.insert(0, Broken())
        from reference_libs import import_reference, is_standin

        encodec = import_reference("encodec")
        msstftd = import_reference("encodec.msstftd")
        import encodec.utils
        assert is_standin(encodec.utils.torchaudio) and is_standin(msstftd.torchaudio)
        assert not any(is_standin(m) for k, m in sys.modules.items() if k.partition(".")[0] == "torchaudio")
        try:
            import torchaudio
            raise AssertionError("torchaudio imported")
        except OSError:
            pass
        try:
            import_reference("torchaudio")
            raise AssertionError("no skip")
        except pytest.skip.Exception as skip:
            assert "cannot load" in str(skip)
        torch.manual_seed(0)
        wav = 0.1 * torch.randn(1, 1, 4800)
        with torch.no_grad():
            logits, _ = msstftd.MultiScaleSTFTDiscriminator(32)(wav)
            model = encodec.EncodecModel.encodec_model_24khz(pretrained=False)
            assert model.decode(model.encode(wav)).shape == (1, 1, 4800)
        assert len(logits) == 3
        assert encodec.utils.convert_audio(wav[0], 24000, 48000, 1).shape == (1, 9600)
        print("ok")
    """)
    tests = Path(__file__).resolve().parent
    result = subprocess.run([sys.executable, "-c", script], cwd=tests, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
