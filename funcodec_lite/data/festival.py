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


# Sentence material per language: slot -> words ('_' joins a phrase; 'a|b|c' are masculine, feminine and
# neuter forms agreeing with the slot after '^' in a template; '=m', '=f', '=n' give a word's gender).
# Texts are in each language's script; festival reads them in the voice's `encoding`.
_WORDS = {
    "it": dict(
        name="Marco Luca Giorgio Paolo Andrea Matteo Franco Stefano Giulia Anna Chiara Sara Elena Marta "
             "Silvia Laura",
        verb="comprato trovato visto portato riparato venduto lavato cercato perso scritto aperto chiuso "
             "preparato dipinto",
        obj="una_lettera il_libro_rosso la_chiave_di_casa un_ombrello la_macchina_nuova tre_biglietti "
            "un_regalo il_giornale le_scarpe un_quadro la_bicicletta il_telefono due_bottiglie una_torta "
            "il_cappello la_valigia",
        place="al_mercato alla_stazione in_biblioteca a_scuola al_porto in_giardino in_ufficio al_museo "
              "in_cucina al_parco in_piazza in_montagna",
        time="ieri_sera stamattina lunedì dopo_pranzo la_settimana_scorsa a_mezzanotte domenica_mattina "
             "prima_di_cena in_estate l'altro_ieri",
        templates=["{name} ha {verb} {obj} {place} {time}.", "{time} {name} ha {verb} {obj} {place}.",
                   "Perché {name} ha {verb} {obj} {place}?", "{name} e {name2} hanno {verb} {obj} {place}.",
                   "Secondo {name}, {name2} adesso è {place}.", "Domani {name} porterà {obj} {place}.",
                   "Non so se {name} ha {verb} {obj} {time}."]),
    "cs": dict(
        name="Jan=m Petr=m Tomáš=m Pavel=m Martin=m Jakub=m Lukáš=m Karel=m Eva=f Jana=f Marie=f Lucie=f "
             "Tereza=f Petra=f Hana=f Klára=f",
        verb="koupil|koupila našel|našla viděl|viděla přinesl|přinesla opravil|opravila prodal|prodala "
             "umyl|umyla hledal|hledala ztratil|ztratila napsal|napsala otevřel|otevřela zavřel|zavřela "
             "uvařil|uvařila namaloval|namalovala",
        obj="knihu dopis kolo starý_klobouk nové_auto velký_dort klíče_od_domu deštník tři_lístky noviny "
            "modrou_tašku krásný_obraz láhev_vína telefon čerstvý_chléb dárek",
        place="na_trhu na_nádraží v_knihovně ve_škole v_přístavu na_zahradě v_kanceláři v_muzeu v_kuchyni "
              "v_parku na_náměstí na_horách",
        time="včera_večer dnes_ráno v_pondělí po_obědě minulý_týden o_půlnoci v_neděli_ráno před_večeří "
             "v_létě předevčírem",
        dest="domů do_školy na_nádraží do_parku do_práce do_města", said="řekl|řekla", went="šel|šla",
        templates=["{name} {verb^name} {obj} {place} {time}.", "{time} {name} {verb^name} {obj} {place}.",
                   "Proč {name} {verb^name} {obj} {place}?", "{name} {said^name}, že {name2} je teď {place}.",
                   "Zítra {name} ponese {obj} {dest}.",
                   "{name} {verb^name} {obj} a potom {went^name} {dest}.",
                   "Myslím, že {name} {verb^name} {obj} {time}."]),
    "ru": dict(
        name="Иван=m Пётр=m Алексей=m Дмитрий=m Сергей=m Николай=m Андрей=m Михаил=m Анна=f Мария=f Ольга=f "
             "Елена=f Наталья=f Татьяна=f Ирина=f Светлана=f",
        verb="купил|купила нашёл|нашла увидел|увидела принёс|принесла починил|починила продал|продала "
             "помыл|помыла искал|искала потерял|потеряла написал|написала открыл|открыла закрыл|закрыла "
             "приготовил|приготовила нарисовал|нарисовала",
        obj="книгу письмо велосипед старую_шляпу новую_машину большой_торт ключи_от_дома зонтик три_билета "
            "газету синюю_сумку красивую_картину бутылку_воды телефон свежий_хлеб подарок",
        place="на_рынке на_вокзале в_библиотеке в_школе в_порту в_саду в_офисе в_музее на_кухне в_парке "
              "на_площади в_горах",
        time="вчера_вечером сегодня_утром в_понедельник после_обеда на_прошлой_неделе в_полночь "
             "в_воскресенье_утром перед_ужином летом позавчера",
        dest="домой в_школу на_вокзал в_парк на_работу к_реке", said="сказал|сказала", went="пошёл|пошла",
        templates=["{name} {verb^name} {obj} {place} {time}.", "{time} {name} {verb^name} {obj} {place}.",
                   "Почему {name} {verb^name} {obj} {place}?",
                   "{name} {said^name}, что {name2} сейчас {place}.", "Завтра {name} отнесёт {obj} {dest}.",
                   "{name} {verb^name} {obj}, а потом {went^name} {dest}.",
                   "Я думаю, что {name} {verb^name} {obj} {time}."]),
    "fi": dict(
        name="Matti Pekka Juha Antti Mikko Timo Jari Ville Anna Liisa Maria Sanna Johanna Tiina Laura Kaisa",
        verb="osti löysi näki toi korjasi myi pesi kadotti kirjoitti avasi sulki keitti maalasi lainasi "
             "piilotti",
        obj="kirjan kirjeen polkupyörän vanhan_hatun uuden_auton ison_kakun kotiavaimet sateenvarjon "
            "kolme_lippua sanomalehden sinisen_laukun kauniin_taulun pullon_viiniä puhelimen tuoreen_leivän "
            "lahjan",
        place="torilla asemalla kirjastossa koulussa satamassa puutarhassa toimistossa museossa keittiössä "
              "puistossa aukiolla tunturilla",
        time="eilen_illalla tänä_aamuna maanantaina lounaan_jälkeen viime_viikolla keskiyöllä "
             "sunnuntaiaamuna ennen_illallista kesällä toissapäivänä",
        dest="kotiin kouluun asemalle puistoon töihin joelle",
        templates=["{name} {verb} {obj} {place} {time}.", "{time} {name} {verb} {obj} {place}.",
                   "Miksi {name} {verb} {obj} {place}?", "{name} sanoi, että {name2} on nyt {place}.",
                   "Huomenna {name} vie {obj} {dest}.", "{name} {verb} {obj} ja lähti sitten {dest}.",
                   "Luulen, että {name} {verb} {obj} {time}."]),
    "ca": dict(
        name="Jordi Pere Marc Joan Pau Oriol Albert Xavier Anna Marta Laia Núria Montse Carla Mireia Gemma",
        verb="comprar trobar veure portar arreglar vendre rentar buscar perdre escriure obrir tancar cuinar "
             "pintar",
        obj="un_llibre una_carta la_bicicleta un_barret_vell un_cotxe_nou un_pastís_gran les_claus_de_casa "
            "un_paraigua tres_entrades el_diari una_bossa_blava un_quadre_bonic una_ampolla_d'aigua "
            "el_telèfon pa_fresc un_regal",
        place="al_mercat a_l'estació a_la_biblioteca a_l'escola al_port al_jardí a_l'oficina al_museu "
              "a_la_cuina al_parc a_la_plaça a_la_muntanya",
        time="ahir_a_la_nit aquest_matí dilluns després_de_dinar la_setmana_passada a_mitjanit "
             "diumenge_al_matí abans_de_sopar a_l'estiu abans-d'ahir",
        dest="a_casa a_l'escola a_l'estació al_parc a_la_feina al_riu",
        templates=["{name} va {verb} {obj} {place} {time}.", "{time}, {name} va {verb} {obj} {place}.",
                   "Per què {name} va {verb} {obj} {place}?", "{name} diu que {name2} ara és {place}.",
                   "Demà {name} portarà {obj} {dest}.", "{name} i {name2} van {verb} {obj} {place}.",
                   "Crec que {name} va {verb} {obj} {time}."]),
    "hi": dict(
        name="राम=m मोहन=m अमित=m राहुल=m सुरेश=m विजय=m अर्जुन=m रवि=m सीता=f प्रिया=f अनीता=f पूजा=f गीता=f "
             "सुनीता=f मीरा=f नेहा=f",
        verb="खरीदा|खरीदी देखा|देखी बेचा|बेची धोया|धोई बनाया|बनाई रखा|रखी उठाया|उठाई छिपाया|छिपाई भेजा|भेजी "
             "साफ_किया|साफ_की ठीक_किया|ठीक_की पसंद_किया|पसंद_की",
        obj="किताब=f चिट्ठी=f साइकिल=f पुरानी_टोपी=f नई_गाड़ी=f बड़ा_केक=m घर_की_चाबी=f छाता=m अखबार=m "
            "नीला_थैला=m सुंदर_तस्वीर=f पानी_की_बोतल=f फोन=m गरम_रोटी=f तोहफा=m लाल_कुर्सी=f",
        place="बाजार_में स्टेशन_पर पुस्तकालय_में स्कूल_में बंदरगाह_पर बगीचे_में दफ्तर_में संग्रहालय_में रसोई_में "
              "पार्क_में चौक_पर पहाड़ों_पर",
        time="कल_शाम आज_सुबह सोमवार_को दोपहर_के_बाद पिछले_हफ्ते आधी_रात_को रविवार_सुबह रात_के_खाने_से_पहले "
             "गर्मियों_में परसों",
        dest="स्कूल बाजार घर पार्क स्टेशन नदी_के_किनारे", willgo="जाएगा|जाएगी",
        templates=["{name} ने {time} {place} {obj} {verb^obj}।", "{time} {name} ने {place} {obj} {verb^obj}।",
                   "{name} ने {place} {obj} क्यों {verb^obj}?", "{name} ने कहा कि {name2} अभी {place} है।",
                   "कल सुबह {name} {dest} {willgo^name}।", "मुझे लगता है कि {name} ने {time} {obj} {verb^obj}।",
                   "{name} और {name2} ने {place} {obj} {verb^obj}।"]),
    "mr": dict(
        name="राम=m मोहन=m अमित=m सुरेश=m विजय=m अर्जुन=m सचिन=m गणेश=m सीता=f गीता=f प्रिया=f सुनीता=f मीरा=f "
             "पूजा=f रेखा=f आशा=f",
        verb="विकत_घेतला|विकत_घेतली|विकत_घेतले पाहिला|पाहिली|पाहिले आणला|आणली|आणले विकला|विकली|विकले "
             "धुतला|धुतली|धुतले बनवला|बनवली|बनवले ठेवला|ठेवली|ठेवले उचलला|उचलली|उचलले लपवला|लपवली|लपवले "
             "पाठवला|पाठवली|पाठवले शोधला|शोधली|शोधले",
        obj="पुस्तक=n पत्र=n सायकल=f जुनी_टोपी=f नवी_गाडी=f मोठा_केक=m घराची_चावी=f छत्री=f निळी_पिशवी=f "
            "सुंदर_चित्र=n पाण्याची_बाटली=f फोन=m भाकरी=f आंबा=m खेळणे=n लाल_खुर्ची=f",
        place="बाजारात स्टेशनवर वाचनालयात शाळेत बंदरावर बागेत कार्यालयात संग्रहालयात स्वयंपाकघरात उद्यानात "
              "चौकात डोंगरावर",
        time="काल_संध्याकाळी आज_सकाळी सोमवारी दुपारच्या_जेवणानंतर गेल्या_आठवड्यात मध्यरात्री रविवारी_सकाळी "
             "रात्रीच्या_जेवणापूर्वी उन्हाळ्यात परवा",
        dest="शाळेत बाजारात घरी उद्यानात स्टेशनवर नदीवर", said="म्हणाला|म्हणाली",
        templates=["{name}ने {time} {place} {obj} {verb^obj}.", "{time} {name}ने {place} {obj} {verb^obj}.",
                   "{name}ने {place} {obj} का {verb^obj}?", "{name} {said^name} की {name2} आता {place} आहे.",
                   "उद्या सकाळी {name} {dest} जाईल.", "मला वाटते की {name}ने {time} {obj} {verb^obj}.",
                   "{name} आणि {name2} यांनी {place} {obj} {verb^obj}."]),
    "te": dict(
        name="రాము=m కృష్ణ=m రవి=m సురేష్=m వెంకట్=m అర్జున్=m శ్రీను=m గోపాల్=m సీత=f లక్ష్మి=f రాధ=f ప్రియ=f గీత=f "
             "సుజాత=f పద్మ=f కవిత=f",
        verb="కొన్నాడు|కొన్నది చూశాడు|చూసింది తెచ్చాడు|తెచ్చింది వెతికాడు|వెతికింది అమ్మాడు|అమ్మింది కడిగాడు|కడిగింది "
             "రాశాడు|రాసింది దాచాడు|దాచింది పంపాడు|పంపింది ఉంచాడు|ఉంచింది ఎత్తాడు|ఎత్తింది",
        obj="పుస్తకం ఉత్తరం సైకిలు పాత_టోపీ కొత్త_కారు పెద్ద_కేకు ఇంటి_తాళం గొడుగు మూడు_టిక్కెట్లు దినపత్రిక "
            "నీలం_సంచి అందమైన_బొమ్మ నీళ్ల_సీసా ఫోను రొట్టె బహుమతి",
        place="బజారులో స్టేషనులో గ్రంథాలయంలో బడిలో రేవులో తోటలో ఆఫీసులో మ్యూజియంలో వంటగదిలో పార్కులో ఊరిలో "
              "కొండ_మీద",
        time="నిన్న_సాయంత్రం ఈ_రోజు_ఉదయం సోమవారం మధ్యాహ్నం పోయిన_వారం అర్ధరాత్రి ఆదివారం_ఉదయం "
             "రాత్రి_భోజనానికి_ముందు వేసవిలో మొన్న",
        dest="బడికి బజారుకి ఇంటికి పార్కుకి స్టేషనుకి నది_దగ్గరికి", said="చెప్పాడు|చెప్పింది",
        willgo="వెళ్తాడు|వెళ్తుంది",
        templates=["{name} {time} {place} {obj} {verb^name}.", "{time} {name} {place} {obj} {verb^name}.",
                   "{name} {place} {obj} ఎందుకు {verb^name}?",
                   "{name2} ఇప్పుడు {place} ఉన్నారని {name} {said^name}.",
                   "రేపు ఉదయం {name} {dest} {willgo^name}.",
                   "{name} {time} {obj} {verb^name} అని నేను అనుకుంటున్నాను."]),
}
_GENDERS = {"m": 0, "f": 1, "n": 2}
_SLOT = re.compile(r"\{([a-z]+?)(\d*)(?:\^([a-z]+\d*))?\}")
LANGUAGES = tuple(_WORDS)


def _fill(template: str, words: dict[str, list[str]], rng: random.Random) -> str:
    """`template` with its slots filled by distinct seeded choices, agreeing in gender where asked."""
    picks: dict[str, str] = {}
    for base, index, _ in _SLOT.findall(template):
        if base + index not in picks:
            taken = [w for slot, w in picks.items() if slot.rstrip("0123456789") == base]
            picks[base + index] = rng.choice([w for w in words[base] if w not in taken])

    def word(match: re.Match) -> str:
        text = picks[match.group(1) + match.group(2)].split("=")[0]
        if "|" in text:
            controller = picks[match.group(3)].partition("=")[2] or "m"
            text = text.split("|")[_GENDERS[controller]]
        return text.replace("_", " ")

    sentence = _SLOT.sub(word, template)
    return sentence[0].upper() + sentence[1:]


def make_sentences_in(language: str, count: int, seed: int) -> list[str]:
    """`count` distinct sentences in `language` (one of `LANGUAGES`), the same for a seed."""
    table = _WORDS[language]
    words = {slot: value.split() for slot, value in table.items() if slot != "templates"}
    rng = random.Random(f"{language}-{seed}")
    sentences: dict[str, None] = {}
    for _ in range(100 * count + 1000):
        if len(sentences) == count:
            return list(sentences)
        sentences[_fill(rng.choice(table["templates"]), words, rng)] = None
    raise ValueError(f"could not make {count} distinct {language} sentences")


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
