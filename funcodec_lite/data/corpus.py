"""Speech corpora as Kaldi data dirs: espeak-ng or festival speech of generated sentences, or audio trees."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from funcodec_lite.audio.io import load_audio, save_audio
from funcodec_lite.audio.levels import peak_normalize
from funcodec_lite.data.festival import FestivalUtterance, FestivalVoice, make_sentences_in, split_speakers
from funcodec_lite.data.festival import synthesize as festival_synthesize
from funcodec_lite.data.kaldi import Utterance, write_data_dir

SPLITS = ("train", "dev", "test")
INSTALL_HINT = ("espeak-ng not found on PATH; install it with 'apt-get install -y espeak-ng' (Debian/Ubuntu) "
                "or 'brew install espeak-ng' (macOS), or index real audio with --from-corpus DIR")

_NOUNS = """apple basket bicycle blanket bottle bridge bucket button camera candle canyon carpet castle
cloud coat compass cookie corner cottage curtain desk diamond doctor dragon drawer engine farmer feather
fence field finger flower forest garden gate guitar hammer helmet hill island jacket kettle kitchen ladder
lamp lantern letter lion machine market meadow mirror monkey mountain museum needle ocean orange painter
pencil picture pillow planet pocket puzzle rabbit river rocket saddle sailor shadow signal singer soldier
spoon station stone student table teacher ticket tiger tower train tunnel umbrella valley village violin
wagon window wizard""".split()
_ADJECTIVES = """ancient bright broken busy calm careful cheerful clever cold curious dark distant dusty
eager early empty enormous famous fancy fragile friendly gentle golden green grumpy happy heavy hidden
hollow honest humble hungry icy lazy little lonely loud lucky modest narrow noisy old orange patient
polite proud quiet rapid rough rusty shiny silent silver simple sleepy slow small smooth soft strange
sturdy tall tiny warm wet wild wise wooden young purple yellow""".split()
_VERBS = [pair.split(":") for pair in """borrow:borrowed build:built carry:carried catch:caught
clean:cleaned climb:climbed collect:collected cover:covered deliver:delivered discover:discovered
draw:drew drop:dropped fix:fixed follow:followed find:found hide:hid hold:held lift:lifted mend:mended
move:moved notice:noticed open:opened paint:painted pack:packed pull:pulled push:pushed repair:repaired
return:returned sell:sold send:sent share:shared show:showed study:studied throw:threw touch:touched
visit:visited wash:washed watch:watched wrap:wrapped bring:brought buy:bought lose:lost keep:kept""".split()]
_ADVERBS = """quickly slowly carefully quietly happily suddenly gently bravely eagerly nervously proudly
calmly boldly softly loudly patiently politely secretly silently easily warmly neatly""".split()
_NAMES = """Alice Benjamin Clara Daniel Elena Felix Grace Henry Isabel Jack Katherine Leo Maria Nathan
Olivia Peter Quentin Rosa Samuel Tara Victor Wendy Xavier Yasmin Zachary Amelia Oscar Hannah Martin Lucy
Thomas Nora George Eva Simon Julia Arthur Fiona Hugo Irene""".split()
_PLACES = """airport bakery beach cathedral cinema factory farm harbor hospital hotel library lighthouse
museum office park playground restaurant school stadium station supermarket theater university zoo""".split()
_TIMES = ["this morning", "last night", "on Monday", "before lunch", "after the storm", "every Sunday",
          "in the spring", "at midnight", "yesterday afternoon", "three days ago", "during the summer",
          "early on Friday", "late in the evening", "on a rainy Tuesday", "just before sunrise"]
_TEMPLATES = [
    "The {adj} {noun} {past} the {noun2} {adv}.",
    "{name} {past} {num} {adj} {nouns} near the {place} {time}.",
    "Did {name} really {verb} the {adj} {noun} {time}?",
    "Why would anyone {verb} {a_adj} {noun} at the {place}?",
    "{name} said that the {noun} was {adj} and {adj2}.",
    "Please {verb} the {nouns} before {name2} comes back from the {place}.",
    "After the {adj} {noun} {past} the {noun2}, {name} went to the {place}.",
    "What {a_adj} {noun} {name} {past} at the {place}!",
    "In {year}, {name} and {name2} {past} {a_adj} {noun} by the {place}.",
    "Nobody knew why the {nouns} near the {place} were so {adj}.",
    "{name} {adv} {past} the {noun}, then {past2} {a_adj2} {noun2}.",
    "If the {noun} is {adj}, we will {verb} it tomorrow.",
    "There were {num} {adj} {nouns} and one {adj2} {noun2} in the {place}.",
    "How many {nouns} did {name} {verb} at the {place} {time}?",
    "The {nouns} of the {place} are {adj}, but the {noun2} is {adj2}.",
    "{name} asked {name2} to {verb} the {adj} {noun} {adv}.",
]
# espeak-ng language voices (accents) and the voice variants (timbres) combined with them; robotic,
# whispering and clipping-prone variants are left out. Speaker ids use letters, digits and '_' only.
ACCENTS = {"gb": "en-gb", "us": "en-us", "sc": "en-gb-scotland", "rp": "en-gb-x-rp", "lan": "en-gb-x-gbclan",
           "wm": "en-gb-x-gbcwmd", "car": "en-029", "nyc": "en-us-nyc"}
VARIANTS = """m1 m2 m3 m4 m5 m6 m7 m8 f1 f2 f3 f4 f5 klatt klatt2 klatt3 klatt4 adam Alicia Andrea Andy
Annie aunty belinda benjamin caleb david edward john linda max Michael norbert quincy rob robert shelby
steph travis victor zac Denis Hugo Lee Mike anika""".split()


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _with_article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def make_sentences(count: int, seed: int) -> list[str]:
    """`count` distinct English sentences from the word lists and templates above, the same for a seed."""
    rng = random.Random(seed)
    sentences: dict[str, None] = {}
    for _ in range(100 * count + 1000):
        if len(sentences) == count:
            return list(sentences)
        adj, adj2 = rng.sample(_ADJECTIVES, 2)
        noun, noun2 = rng.sample(_NOUNS, 2)
        (verb, past), (_, past2) = rng.sample(_VERBS, 2)
        name, name2 = rng.sample(_NAMES, 2)
        sentences[rng.choice(_TEMPLATES).format(
            adj=adj, adj2=adj2, a_adj=_with_article(adj), a_adj2=_with_article(adj2), noun=noun,
            noun2=noun2, nouns=_plural(noun), verb=verb, past=past, past2=past2, adv=rng.choice(_ADVERBS),
            name=name, name2=name2, place=rng.choice(_PLACES), time=rng.choice(_TIMES),
            num=rng.randint(2, 99), year=rng.randint(1900, 2030))] = None
    raise ValueError(f"could not make {count} distinct sentences")


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: an English accent combined with a voice variant."""

    accent: str
    variant: str

    @property
    def speaker(self) -> str:
        tag = next(tag for tag, name in ACCENTS.items() if name == self.accent)
        return f"{tag}_{self.variant.lower()}"

    @property
    def espeak_name(self) -> str:
        return f"{self.accent}+{self.variant}"


@dataclass(frozen=True)
class PlannedUtterance:
    """One utterance to synthesize: ids, split, voice, text, espeak-ng rate, pitch, amplitude; peak level."""

    utt_id: str
    split: str
    voice: Voice
    text: str
    rate: int
    pitch: int
    amplitude: int
    peak_db: float

    @property
    def synth(self) -> str:
        """The utt2synth fields after the utterance id."""
        return (f"espeak-ng {self.voice.espeak_name} rate={self.rate} pitch={self.pitch} "
                f"amplitude={self.amplitude} peak_db={self.peak_db:g}")


def split_counts(total: int, dev: int | None, test: int | None) -> tuple[int, int, int]:
    """(train, dev, test) speaker counts; dev and test default to 10% of `total`, at least 1 each."""
    dev = max(1, round(0.1 * total)) if dev is None else dev
    test = max(1, round(0.1 * total)) if test is None else test
    if dev < 1 or test < 1 or total - dev - test < 1:
        raise ValueError(f"cannot split {total} speakers into train, {dev} dev and {test} test "
                         "with at least one each")
    return total - dev - test, dev, test


def _assign_voices(accents: list[str], variants: list[str], counts: tuple[int, int, int],
                   rng: random.Random) -> dict[str, list[Voice]]:
    """Picks voices per split; each split has its own variants, so dev/test timbres are unseen in training."""
    variants = variants[:]
    rng.shuffle(variants)
    per_variant = len(accents)
    need = [-(-n // per_variant) for n in counts]  # ceil: variants needed to have n distinct voices
    held = [max(need[i], round(len(variants) * counts[i] / sum(counts))) for i in (1, 2)]
    if need[0] > len(variants) - sum(held):
        held = need[1:]
    if need[0] > len(variants) - sum(held):
        raise ValueError(f"{sum(counts)} voices need more than the {len(variants)} variants x "
                         f"{len(accents)} accents espeak-ng offers here")
    pools = {"dev": variants[: held[0]], "test": variants[held[0] : sum(held)],
             "train": variants[sum(held) :]}
    voices = {}
    for split, count in zip(SPLITS, counts):
        # round-robin over the variants, each with its own accent order: every variant before any repeat
        orders = {v: rng.sample(accents, len(accents)) for v in pools[split]}
        chosen = [Voice(orders[v][r], v) for r in range(per_variant) for v in pools[split]]
        voices[split] = chosen[:count]
    return voices


def plan_corpus(num_utts: int, num_voices: int, seed: int, dev_speakers: int | None = None,
                test_speakers: int | None = None, variants: list[str] | None = None,
                accents: list[str] | None = None, festival_voices: Sequence[FestivalVoice] = (),
                festival_dev: int | None = None, festival_test: int | None = None,
                ) -> list[PlannedUtterance | FestivalUtterance]:
    """Sentences, voices and voice settings of a synthetic corpus; a pure function of its args.

    Utterances go round-robin over all speakers (espeak-ng voices, then festival speakers), so each has
    about num_utts / speakers of them. A festival speaker with several voices (one recording, several
    languages) speaks them in turn; every voice speaks sentences of its own language.

    Args:
        num_utts: number of utterances (all sentences distinct).
        num_voices: number of espeak-ng voices (speakers), split into train/dev/test by `split_counts`;
            0 for festival voices only.
        seed: seed of every random choice.
        dev_speakers, test_speakers: held-out espeak-ng voices (default 10% of them, at least 1).
        variants, accents: the espeak-ng variants and accent voices to use (default: all listed above).
        festival_voices: festival voices to add; their speakers are split by `festival.split_speakers`.
        festival_dev, festival_test: held-out festival speakers (default 10% of them, at least 1).
    """
    festival_speakers = sorted({v.speaker for v in festival_voices})
    if num_utts < num_voices + len(festival_speakers):
        raise ValueError(f"--num-utts ({num_utts}) must be at least the number of voices "
                         f"({num_voices + len(festival_speakers)})")
    rng = random.Random(seed)
    speakers: list[tuple[str, Voice | list[FestivalVoice]]] = []
    if num_voices or not festival_voices:
        counts = split_counts(num_voices, dev_speakers, test_speakers)
        by_split = _assign_voices(sorted(accents or ACCENTS.values()), list(variants or VARIANTS), counts,
                                  rng)
        speakers += [(split, voice) for split in SPLITS for voice in by_split[split]]
    if festival_voices:
        split_of = split_speakers(list(festival_voices),
                                  split_counts(len(festival_speakers), festival_dev, festival_test), seed)
        speakers += [(split, [v for v in festival_voices if v.speaker == s])
                     for split in SPLITS for s in festival_speakers if split_of[s] == split]
    voices = []
    for index in range(num_utts):
        split, who = speakers[index % len(speakers)]
        voices.append((split, who if isinstance(who, Voice) else who[index // len(speakers) % len(who)]))
    languages = ["en" if isinstance(v, Voice) else v.language for _, v in voices]
    texts = {lang: iter(make_sentences(languages.count(lang), seed) if lang == "en"
                        else make_sentences_in(lang, languages.count(lang), seed)) for lang in set(languages)}
    festival_rng = random.Random(f"festival-plan-{seed}")
    plan: list[PlannedUtterance | FestivalUtterance] = []
    for index, ((split, voice), lang) in enumerate(zip(voices, languages)):
        utt_id, text = f"{voice.speaker}-{index:06d}", next(texts[lang])
        if isinstance(voice, Voice):
            plan.append(PlannedUtterance(utt_id, split, voice, text, rate=rng.randint(135, 205),
                                         pitch=rng.randint(20, 80), amplitude=rng.randint(40, 60),
                                         peak_db=rng.randint(-12, -1)))
        else:
            stretch = round(festival_rng.uniform(0.85, 1.2), 2)
            stretch = 1.0 if voice.engine == "clunits" else stretch  # drawn anyway: the same draws for all
            plan.append(FestivalUtterance(utt_id, split, voice, text, stretch, festival_rng.randint(-12, -1)))
    return plan


def available_voices(espeak: str) -> tuple[list[str], list[str]]:
    """(accents, variants) of `ACCENTS` and `VARIANTS` that this espeak-ng installation has.

    espeak-ng silently falls back to its default voice for an unknown variant, hence the check.
    """
    def listing(kind: str) -> str:
        return subprocess.run([espeak, f"--voices={kind}"], capture_output=True, text=True, check=True).stdout
    languages = {line.split()[1] for line in listing("en").splitlines()[1:] if len(line.split()) > 1}
    files = set(re.findall(r"!v/(\S+)", listing("variant")))
    return ([a for a in ACCENTS.values() if a in languages], [v for v in VARIANTS if v in files])


def _synthesize(item: PlannedUtterance | FestivalUtterance, path: Path, sample_rate: int,
                espeak: str | None, festival: str | None) -> float:
    if isinstance(item, FestivalUtterance):
        wav = festival_synthesize(item.voice, item.text, path, sample_rate, item.stretch, item.peak_db,
                                  festival or "festival")
        return wav.shape[-1] / sample_rate
    espeak = espeak or "espeak-ng"
    tmp = path.with_name(f".{path.stem}.espeak.wav")
    command = [espeak, "-v", item.voice.espeak_name, "-s", str(item.rate), "-p", str(item.pitch),
               "-a", str(item.amplitude), "-w", str(tmp), item.text]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:-1])} failed: {done.stderr.strip()}")
        wav, _ = load_audio(tmp, sample_rate=sample_rate, channels=1)
    finally:
        tmp.unlink(missing_ok=True)
    save_audio(path, peak_normalize(wav, item.peak_db), sample_rate)
    return wav.shape[-1] / sample_rate


def synthesize_corpus(out: str | os.PathLike, plan: Sequence[PlannedUtterance | FestivalUtterance],
                      sample_rate: int = 16000, jobs: int = 1, espeak: str | None = "espeak-ng",
                      progress: Callable[[int, int], None] | None = None,
                      festival: str | None = "festival") -> dict[str, float]:
    """Synthesizes a plan into `out/wavs/<speaker>/<utt>.wav` and writes `out/data/{train,dev,test}`.

    Each data dir has wav.scp (absolute paths), utt2spk and spk2utt, text, and utt2synth: per utterance its
    engine and voice and their settings, 'espeak-ng VOICE rate=R pitch=P amplitude=A peak_db=D' or
    'festival VOICE language=L stretch=S peak_db=D' (D: the peak level in dBFS the audio was scaled to).
    The audio depends only on the plan, so the corpus is the same for any `jobs`.

    Args:
        out: output directory.
        plan: from `plan_corpus`.
        sample_rate: rate of the written wavs (espeak-ng speaks at 22050 Hz; resampled with `resample`).
        jobs: parallel synthesis processes (espeak-ng, festival).
        espeak: the espeak-ng executable.
        progress: called with (done, total) after each utterance.
        festival: the festival executable, for `FestivalUtterance` items.

    Returns:
        dict[str, float]: hours of audio per split.
    """
    out = Path(out).resolve()
    paths = [out / "wavs" / item.voice.speaker / f"{item.utt_id}.wav" for item in plan]
    for path in {p.parent for p in paths}:
        path.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(_synthesize, item, path, sample_rate, espeak, festival)
                   for item, path in zip(plan, paths)]
        seconds = []
        for done, future in enumerate(futures, start=1):
            seconds.append(future.result())
            if progress is not None:
                progress(done, len(plan))
    hours = {}
    for split in SPLITS:
        chosen = [(item, str(path), s) for item, path, s in zip(plan, paths, seconds) if item.split == split]
        directory = out / "data" / split
        write_data_dir(directory, [Utterance(i.utt_id, p, i.voice.speaker) for i, p, _ in chosen],
                       {i.utt_id: i.text for i, _, _ in chosen})
        lines = sorted(f"{i.utt_id} {i.synth}" for i, _, _ in chosen)
        (directory / "utt2synth").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        hours[split] = sum(s for _, _, s in chosen) / 3600
    return hours


def find_espeak(name: str = "espeak-ng") -> str | None:
    """Path of the espeak-ng executable, or None when it is not installed."""
    return shutil.which(name)


_AUDIO_SUFFIXES = (".wav", ".flac")
_FILE_SPEAKER = [re.compile(r"^(\d+)_\d+_\d+_\d+$"),  # LibriTTS: 84_121123_000007_000001
                 re.compile(r"^(\d+)-\d+-\d+$"),  # LibriSpeech: 84-121123-0001
                 re.compile(r"^([ps]\d+)_\d+(_mic\d)?$")]  # VCTK: p225_001, p225_001_mic1


def _clean(name: str, allowed: str = r"A-Za-z0-9_") -> str:
    return re.sub(f"[^{allowed}]", "_", name) or "_"


def speaker_of(path: Path, root: Path) -> str:
    """Speaker id of an audio file: from LibriTTS, LibriSpeech or VCTK file names, else its folder's name.

    Ids keep letters, digits and '_' (anything else becomes '_'), so that '<speaker>-<rest>' utterance ids
    sort with their speakers, as Kaldi requires.
    """
    for pattern in _FILE_SPEAKER:
        match = pattern.match(path.stem)
        if match:
            return _clean(match.group(1))
    return _clean(path.parent.name if path.parent != root else root.name)


def _transcripts(files: list[Path]) -> dict[str, Path]:
    """Transcript files by stem: LibriTTS '<stem>.normalized.txt' (preferred) or '<stem>.txt' (VCTK)."""
    found: dict[str, Path] = {}
    for path in files:
        if path.name.endswith(".normalized.txt"):
            found[path.name[: -len(".normalized.txt")]] = path
    for path in files:
        if path.suffix == ".txt" and not path.name.endswith((".normalized.txt", ".original.txt")):
            found.setdefault(path.stem, path)
    return found


def index_corpus(root: str | os.PathLike, seed: int = 0, dev_speakers: int | None = None,
                 test_speakers: int | None = None) -> tuple[dict[str, list[Utterance]], dict[str, str]]:
    """Lists the wav/flac files under `root` and splits them by speaker into train/dev/test.

    Hidden files and folders are ignored. Utterance ids are '<speaker>-<file stem>' (the stem's speaker
    prefix removed, a '_2', '_3'... suffix where two files would get the same id). The held-out speakers are
    drawn with `seed` from the sorted speaker list.

    Args:
        root: the corpus folder (LibriTTS, VCTK, or any tree with one folder per speaker).
        seed: seed of the speaker split.
        dev_speakers, test_speakers: held-out speaker counts (default 10% of the speakers, at least 1).

    Returns:
        (splits, text): utterances per split (absolute paths) and transcripts where the corpus has them.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory")
    files = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(folder) / n for n in sorted(names) if not n.startswith("."))
    audio = [f for f in files if f.suffix.lower() in _AUDIO_SUFFIXES]
    if not audio:
        raise ValueError(f"{root}: no {' or '.join(_AUDIO_SUFFIXES)} files found")
    transcripts = _transcripts([f for f in files if f.suffix == ".txt"])
    utterances, text, taken = [], {}, set()
    for path in audio:
        speaker = speaker_of(path, root)
        stem = path.stem
        if stem.startswith((speaker + "_", speaker + "-")):
            stem = stem[len(speaker) + 1 :]
        base = utt_id = f"{speaker}-{_clean(stem, r'A-Za-z0-9_.-')}"
        copy = 1
        while utt_id in taken:
            copy += 1
            utt_id = f"{base}_{copy}"
        taken.add(utt_id)
        utterances.append(Utterance(utt_id, str(path), speaker))
        script = transcripts.get(path.stem) or transcripts.get(re.sub(r"_mic\d$", "", path.stem))
        if script is not None:
            text[utt_id] = " ".join(script.read_text(encoding="utf-8", errors="replace").split())
    speakers = sorted({u.speaker for u in utterances})
    counts = split_counts(len(speakers), dev_speakers, test_speakers)
    random.Random(seed).shuffle(speakers)
    split_of = {s: "test" for s in speakers[: counts[2]]}
    split_of.update({s: "dev" for s in speakers[counts[2] : counts[2] + counts[1]]})
    splits: dict[str, list[Utterance]] = {split: [] for split in SPLITS}
    for utt in utterances:
        splits[split_of.get(utt.speaker, "train")].append(utt)
    return splits, text
