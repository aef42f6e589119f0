"""Festival voices of recorded speakers: the voice table, sentences in each voice's language, synthesis."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

from funcodec_lite.audio.io import load_audio, resample, save_audio
from funcodec_lite.audio.levels import peak_normalize
from funcodec_lite.data.festival_text import LANGUAGES, make_sentences_in

__all__ = ["LANGUAGES", "make_sentences_in"]  # re-exported: the sentences are a part of the voice table

INSTALL_HINT = ("festival not found on PATH; install it with 'apt-get install -y --no-install-recommends "
                "festival festvox-kdlpc16k' (Debian/Ubuntu; more festvox-* voices: see docs/data.md)")


@dataclass(frozen=True)
class FestivalVoice:
    """A festival voice: selected with `(voice_<name>)`, speaking `language` text in `encoding`.

    `person` is the recorded speaker; voices made from one recording share it (one speaker, one split).
    `sex` is 'm', 'f' or None (unknown); `sample_rate` is the rate festival writes. `engine` says how the
    duration stretch is applied: 'diphone' (Duration_Stretch), 'hts' (the engine's speed) or 'clunits'
    (recorded timing, no stretch).
    """

    name: str
    person: str
    language: str
    sex: str | None
    sample_rate: int
    engine: str
    encoding: str
    package: str

    @property
    def speaker(self) -> str:
        return f"fest_{self.person}"


# Every voice here was checked to speak its language (festival 2.5, Debian packages).
FESTIVAL_VOICES = (
    FestivalVoice("ked_diphone", "ked", "en", "m", 16000, "diphone", "ascii", "festvox-kdlpc16k"),
    FestivalVoice("lp_diphone", "lp", "it", "f", 16000, "diphone", "latin-1", "festvox-italp16k"),
    FestivalVoice("pc_diphone", "pc", "it", "m", 16000, "diphone", "latin-1", "festvox-itapc16k"),
    FestivalVoice("czech_dita", "dita", "cs", "f", 32000, "diphone", "iso-8859-2", "festvox-czech-dita"),
    FestivalVoice("czech_krb", "krb", "cs", "m", 32000, "diphone", "iso-8859-2", "festvox-czech-krb"),  # boy
    FestivalVoice("czech_machac", "machac", "cs", "m", 32000, "diphone", "iso-8859-2",
                  "festvox-czech-machac"),
    FestivalVoice("czech_ph", "ph", "cs", "m", 44100, "diphone", "iso-8859-2", "festvox-czech-ph"),
    FestivalVoice("msu_ru_nsh_clunits", "nsh", "ru", "m", 16000, "clunits", "utf-8", "festvox-ru"),
    FestivalVoice("suo_fi_lj_diphone", "lj", "fi", "f", 22050, "diphone", "latin-1", "festvox-suopuhe-lj"),
    FestivalVoice("hy_fi_mv_diphone", "mv", "fi", "m", 22050, "diphone", "latin-1", "festvox-suopuhe-mv"),
    FestivalVoice("upc_ca_ona_hts", "ona", "ca", "f", 16000, "hts", "latin-1", "festvox-ca-ona-hts"),
    # The Hindi, Marathi and Telugu voices share one diphone recording (NSKlpc.group): one speaker.
    FestivalVoice("hindi_NSK_diphone", "nsk", "hi", "m", 16000, "diphone", "utf-8", "festvox-hi-nsk"),
    FestivalVoice("marathi_NSK_diphone", "nsk", "mr", "m", 16000, "diphone", "utf-8", "festvox-mr-nsk"),
    FestivalVoice("telugu_NSK_diphone", "nsk", "te", "m", 16000, "diphone", "utf-8", "festvox-te-nsk"),
)
# Held-out speakers: never synthesized, in any split (festvox-kallpc16k/8k, festvox-us-slt-hts and kin).
EXCLUDED_SPEAKERS = ("kal", "slt")
EXCLUDED_VOICES = ("kal_diphone", "cmu_us_kal_com_hts", "cmu_us_slt_arctic_hts", "cmu_us_slt_arctic_clunits",
                   "cmu_us_slt_cg")


def check_not_excluded(name: str) -> None:
    """Raises ValueError when `name` is a voice of a held-out speaker, kal or slt."""
    if name in EXCLUDED_VOICES or re.search(rf"(^|_)({'|'.join(EXCLUDED_SPEAKERS)})\d*(_|$)", name.lower()):
        raise ValueError(f"festival voice {name} is refused: speakers {' and '.join(EXCLUDED_SPEAKERS)} "
                         "are held out of every split")


def find_festival(name: str = "festival") -> str | None:
    """Path of the festival executable, or None when it is not installed."""
    return shutil.which(name)


def available_festival_voices(festival: str) -> list[FestivalVoice]:
    """The voices of `FESTIVAL_VOICES` that this festival installation has (held-out speakers never)."""
    done = subprocess.run([festival, "--pipe"], input=b"(print (voice.list))\n", capture_output=True,
                          check=True, timeout=60)
    installed = set(re.findall(r"[\w.-]+", done.stdout.decode("latin-1")))
    return [v for v in FESTIVAL_VOICES if v.name in installed and v.name not in EXCLUDED_VOICES]


def choose_voices(names: list[str] | None, installed: list[FestivalVoice]) -> list[FestivalVoice]:
    """The voices named (all installed ones for None); a one-line ValueError for a refused or missing one."""
    if names is None:
        return list(installed)
    known = {v.name: v for v in FESTIVAL_VOICES}
    have = {v.name for v in installed}
    chosen = []
    for name in names:
        check_not_excluded(name)
        if name not in known:
            raise ValueError(f"unknown festival voice {name}; known: {' '.join(known)}")
        if name not in have:
            raise ValueError(f"festival voice {name} is not installed "
                             f"(apt-get install -y {known[name].package})")
        chosen.append(known[name])
    return chosen


def split_speakers(voices: list[FestivalVoice], counts: tuple[int, int, int], seed: int) -> dict[str, str]:
    """Split of each festival speaker (`voice.speaker`): `counts` = (train, dev, test) speakers.

    Speakers are drawn for test, then dev, in a seeded order, and only while each of their languages keeps
    a speaker in train: a language is never unheard in training (the one English voice stays in train).
    Languages not yet held out go first, so that dev and test differ where they can.
    """
    languages: dict[str, set[str]] = {}
    for voice in voices:
        languages.setdefault(voice.speaker, set()).add(voice.language)
    order = sorted(languages)
    random.Random(f"festival-{seed}").shuffle(order)
    split_of = dict.fromkeys(order, "train")

    def can_hold(speaker: str, new_languages_only: bool) -> bool:
        held = set().union(*(languages[s] for s in order if split_of[s] != "train"))
        trained = [languages[s] for s in order if s != speaker and split_of[s] == "train"]
        return (split_of[speaker] == "train" and not (new_languages_only and languages[speaker] & held)
                and all(any(lang in t for t in trained) for lang in languages[speaker]))

    for split, count in (("test", counts[2]), ("dev", counts[1])):
        for new_languages_only in (True, False):
            for speaker in order:
                if count and can_hold(speaker, new_languages_only):
                    split_of[speaker] = split
                    count -= 1
        if count:
            raise ValueError(f"cannot hold out {counts[1]} dev and {counts[2]} test festival speakers: only "
                             "speakers of a language with another speaker left in train can be held out")
    return split_of


@dataclass(frozen=True)
class FestivalUtterance:
    """One utterance to synthesize with festival: ids, split, voice, text, duration stretch, peak level."""

    utt_id: str
    split: str
    voice: FestivalVoice
    text: str
    stretch: float
    peak_db: float

    @property
    def synth(self) -> str:
        """The utt2synth fields after the utterance id."""
        return (f"festival {self.voice.name} language={self.voice.language} stretch={self.stretch:g} "
                f"peak_db={self.peak_db:g}")


# Diphone voices resynthesize LPC residuals into int16 samples that wrap around on loud vowels (ked, lp and
# pc several times a sentence). The residual is lowered (halved again while the output still overflows),
# and the voices' volume hooks, which clip, are removed; the peak is set afterwards.
_GAINS = (0.5, 0.25, 0.125, 0.0625)
_SETUP = """(set! after_synth_hooks nil)
(if (not (boundp 'fcl_us_unit_concat)) (set! fcl_us_unit_concat us_unit_concat))
(define (us_unit_concat utt)
  (mapcar (lambda (u) (item.set_feat u "scale"
                        (* %g (if (item.feat.present u "scale") (item.feat u "scale") 1.0))))
          (utt.relation.items utt 'Unit))
  (fcl_us_unit_concat utt))
"""
_STRETCH = {
    "diphone": "(let ((d (Parameter.get 'Duration_Stretch)))"
               " (Parameter.set 'Duration_Stretch (* %g (if d d 1.0))))",
    "hts": "(set! hts_engine_params (append hts_engine_params (list (list \"-r\" (/ 1.0 %g)))))",
    "clunits": "",
}


def _quoted(text: bytes) -> bytes:
    return b'"' + text.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def synthesize(voice: FestivalVoice, text: str, path: str | Path, sample_rate: int, stretch: float = 1.0,
               peak_db: float = -3.0, festival: str = "festival") -> torch.Tensor:
    """Speaks `text` with `voice` into a mono 16-bit wav at `sample_rate`, scaled to a peak of `peak_db` dBFS.

    Args:
        voice: the festival voice (a held-out speaker raises ValueError).
        text: one sentence in the voice's language.
        path: the wav to write (atomically).
        sample_rate: rate of the written wav; festival's output is resampled with `resample`.
        stretch: duration factor (>1 is slower) on top of the voice's own; ignored by 'clunits' voices.
        peak_db: peak level of the written audio in dBFS.
        festival: the festival executable.

    Returns:
        torch.Tensor: the written audio, of shape [1, T].
    """
    check_not_excluded(voice.name)
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.festival.wav")
    stretch_code = (_STRETCH[voice.engine] % stretch) if _STRETCH[voice.engine] else ""
    for gain in _GAINS if voice.engine == "diphone" else _GAINS[:1]:
        script = b"".join([f"(voice_{voice.name})\n{_SETUP % gain}{stretch_code}\n".encode(),
                           b"(set! fcl_utt (utt.synth (Utterance Text ", _quoted(text.encode(voice.encoding)),
                           b")))\n(utt.save.wave fcl_utt ", _quoted(os.fsencode(tmp)), b" 'riff)\n"])
        try:
            done = subprocess.run([festival, "--pipe"], input=script, capture_output=True, timeout=120)
            if done.returncode != 0 or not tmp.is_file() or tmp.stat().st_size <= 44:
                why = done.stderr.decode("latin-1").strip().splitlines() or [f"exit status {done.returncode}"]
                raise RuntimeError(f"festival voice {voice.name} failed on {text!r}: {why[-1]}")
            wav, rate = load_audio(tmp, channels=1)
        finally:
            tmp.unlink(missing_ok=True)
        if wav.numel() < 2 or wav.abs().max() == 0:
            raise RuntimeError(f"festival voice {voice.name} wrote silence for {text!r}")
        # an int16 wrap jumps by nearly 2 between neighbours; real speech jumps by less (HTS voices'
        # buzzy excitation by up to about 1.3)
        if wav.abs().max() < 0.99 and (wav[:, 1:] - wav[:, :-1]).abs().max() <= 1.5:  # no wrap, no clip
            break
    else:
        raise RuntimeError(f"festival voice {voice.name} overflowed its int16 output on {text!r}")
    wav = peak_normalize(resample(wav, rate, sample_rate), peak_db)
    save_audio(path, wav, sample_rate)
    return wav
