"""Speech from espeak-ng: languages, voices, texts, and the spoken-keyword words.

A *speaker* is an espeak-ng language voice with a voice variant (``de+f3``): the language gives
the phonology and accent, the variant the timbre, sex and age. Texts come from Faker in the
language's own locale (sentences where Faker has a word list for it, and everywhere names,
addresses, cities, jobs and dates), so each language speaks its own words and script.
"""
from __future__ import annotations

import functools
import os
import random
import subprocess
import tempfile

import numpy as np

from corpora import signals

#: espeak-ng language voice → Faker locale. Languages where espeak-ng reads Faker's script
#: (Japanese kanji are spelled out as "Chinese letter", so Japanese is left out).
LANGUAGES: dict[str, str] = {
    "en-us": "en_US", "en-gb": "en_GB", "en-gb-scotland": "en_GB", "en-029": "en_US",
    "de": "de_DE", "nl": "nl_NL", "sv": "sv_SE", "nb": "no_NO", "da": "da_DK", "is": "is_IS",
    "fr-fr": "fr_FR", "fr-be": "fr_BE", "es": "es_ES", "es-419": "es_MX", "it": "it_IT",
    "pt": "pt_PT", "pt-br": "pt_BR", "ro": "ro_RO", "la": "la", "lb": "lb_LU", "ga": "ga_IE",
    "pl": "pl_PL", "cs": "cs_CZ", "sk": "sk_SK", "sl": "sl_SI", "hr": "hr_HR", "bs": "bs_BA",
    "bg": "bg_BG", "mk": "mk_MK", "ru": "ru_RU", "uk": "uk_UA", "lt": "lt_LT", "lv": "lv_LV",
    "et": "et_EE", "fi": "fi_FI", "hu": "hu_HU", "el": "el_GR", "sq": "sq_AL", "mt": "mt_MT",
    "tr": "tr_TR", "az": "az_AZ", "uz": "uz_UZ", "ka": "ka_GE", "hy": "hy_AM", "he": "he_IL",
    "ar": "ar_AA", "fa": "fa_IR", "am": "am_ET", "sw": "sw", "hi": "hi_IN", "bn": "bn_BD",
    "gu": "gu_IN", "mr": "mr_IN", "ne": "ne_NP", "or": "or_IN", "ta": "ta_IN", "si": "si_LK",
    "th": "th_TH", "vi": "vi_VN", "id": "id_ID", "cmn": "zh_CN", "yue": "zh_TW", "ko": "ko_KR",
}

#: Whispering variants get the Whispering label rather than a sex.
WHISPER_VARIANTS = frozenset({"whisper", "whisperf"})

#: The 20 core words of Speech Commands v2, spoken in English by every keyword speaker.
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
            "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

#: Accents for the keywords: English voices plus languages whose rules still make the English
#: word recognisable.
KEYWORD_LANGUAGES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc",
                     "de", "nl", "sv", "da", "fr-fr", "es", "it", "pt", "pl", "cs", "fi", "hu",
                     "ro", "id", "sw", "tr", "hr", "nb")

ESPEAK_RATE = 22050


@functools.lru_cache(maxsize=1)
def variants() -> tuple[tuple[str, str], ...]:
    """espeak-ng's voice variants as sorted ``(name, sex)``, sex ``M`` or ``F``."""
    listing = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True,
                             check=True).stdout
    found = []
    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5 and fields[4].startswith("!v/"):
            found.append((fields[4][3:], fields[2].split("/")[-1]))
    if not found:
        raise RuntimeError("espeak-ng lists no voice variants; is espeak-ng-data installed?")
    return tuple(sorted(set(found)))


def synthesize(text: str, language: str, variant: str, *, speed: int = 160, pitch: int = 50,
               word_gap: int = 0) -> np.ndarray:
    """Speak ``text``; float32 mono ``[n, 1]`` at 48 kHz. The text goes through stdin, so a
    leading ``-`` is never read as an option."""
    with tempfile.TemporaryDirectory(prefix="mygo-espeak-") as folder:
        path = os.path.join(folder, "speech.wav")
        subprocess.run(
            ["espeak-ng", "-b", "1", "-v", f"{language}+{variant}", "-s", str(speed), "-p", str(pitch),
             "-g", str(word_gap), "-w", path],
            input=text.encode("utf-8"), capture_output=True, check=True, timeout=60)
        import soundfile

        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return signals.resample(audio, rate)


def trim(audio: np.ndarray, threshold_db: float = -45.0) -> np.ndarray:
    """Drop leading and trailing silence (relative to the peak) from a spoken piece."""
    envelope = np.abs(audio).max(axis=1)
    if envelope.size == 0 or envelope.max() == 0:
        return audio
    loud = np.flatnonzero(envelope > envelope.max() * 10 ** (threshold_db / 20))
    margin = signals.seconds(0.01)
    return audio[max(0, loud[0] - margin): loud[-1] + margin]


@functools.lru_cache(maxsize=None)
def _faker(locale: str):
    import faker

    return faker.Faker(locale)


@functools.lru_cache(maxsize=None)
def _has_word_list(locale: str) -> bool:
    """Whether Faker has words of this language (elsewhere its sentences are Latin lorem ipsum)."""
    import importlib.util

    return locale == "la" or importlib.util.find_spec(f"faker.providers.lorem.{locale}") is not None


def text(language: str, rand: random.Random) -> str:
    """A sentence-like text in ``language`` (a few to a dozen words)."""
    locale = LANGUAGES[language]
    fake = _faker(locale)
    fake.seed_instance(rand.getrandbits(32))
    kinds = ("sentence", "sentence") if _has_word_list(locale) else ()
    kinds += ("name", "address", "city", "job", "date")
    parts = []
    for _ in range(rand.randint(1, 3)):
        kind = rand.choice(kinds)
        if kind == "sentence":
            parts.append(fake.sentence(nb_words=rand.randint(5, 12)))
        elif kind == "name":
            parts.append(fake.name() + ".")
        elif kind == "address":
            parts.append(fake.address().replace("\n", ", ") + ".")
        elif kind == "city":
            parts.append(fake.city() + "?")
        elif kind == "job":
            parts.append(fake.job() + ".")
        else:
            parts.append(fake.date() + ", " + str(rand.randint(2, 9999)) + ".")
    return " ".join(parts)


def random_speaker(rand: random.Random, *, whisper: bool = False) -> tuple[str, str, str]:
    """``(language, variant, sex)``; sex is ``M``, ``F`` or ``W`` (whispered)."""
    language = rand.choice(sorted(LANGUAGES))
    if whisper:
        variant = rand.choice(sorted(WHISPER_VARIANTS))
        return language, variant, "W"
    # espeak-ng has about five male variants for each female one: draw the sex first.
    sex = rand.choice(("F", "M"))
    variant = rand.choice([name for name, s in variants() if s == sex and name not in WHISPER_VARIANTS])
    return language, variant, sex


def speak_random(rand: random.Random, language: str, variant: str) -> np.ndarray:
    """One utterance of a random text, with random speed and pitch, trimmed."""
    return trim(synthesize(text(language, rand), language, variant,
                           speed=rand.randint(120, 220), pitch=rand.randint(20, 80)))
