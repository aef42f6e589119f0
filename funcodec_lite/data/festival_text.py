"""Seeded sentences in the languages of Festival's recorded voices (it, cs, ru, fi, ca, hi, mr, te, en)."""

from __future__ import annotations

import random
import re

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
