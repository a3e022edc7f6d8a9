"""Real recordings that Debian packages ship, with AudioSet labels for each.

- ``openttd-opensfx``: field recordings (CC-BY / CC0, credited inside the archive) of vehicles,
  animals, tools, wind, applause. They live in one OpenTTD ``.cat`` archive, read here.
- ``sound-theme-freedesktop``: desktop event sounds (bell, phone ringing, camera shutter, ...).
- ``asterisk-core-sounds-en-wav``: one speaker's (Allison's) English prompts, 8 kHz.
- ``asterisk-moh-opsound-wav``: five music-on-hold tracks, 8 kHz.

Only sounds with a clear AudioSet meaning are used; the rest of each package is ignored.
"""
from __future__ import annotations

import functools
import glob
import os
import random
import struct

import numpy as np

from corpora import signals

OPENSFX_CAT = "/usr/share/games/openttd/baseset/opensfx/opensfx.cat"
FREEDESKTOP_DIR = "/usr/share/sounds/freedesktop/stereo"
ASTERISK_SPEECH_DIR = "/usr/share/asterisk/sounds/en_US_f_Allison"
ASTERISK_MUSIC_DIR = "/usr/share/asterisk/moh"

SPEECH, FEMALE_SPEECH = "/m/09x0r", "/m/02zsn"
VEHICLE, MOTOR, ENGINE = "/m/07yv9", "/m/012f08", "/m/02mk9"
RAIL, TRAIN, TRAIN_HORN = "/m/06d_3", "/m/07jdr", "/m/0284vy3"
AIRCRAFT, FIXED_WING, JET, PROPELLER = "/m/0k5j", "/m/0cmf2", "/m/04229", "/m/02l6bg"
BOAT, SHIP, FOGHORN = "/m/019jd", "/m/06q74", "/m/04fq5q"
ANIMAL, LIVESTOCK, WILD = "/m/0jbk", "/m/0ch8v", "/m/01280g"
TOOLS, POWER_TOOL = "/m/07k1x", "/m/0_ksk"
WIND, WIND_NOISE = "/m/03m9d0z", "/t/dd00092"
BIRD, BIRD_CALL, CHIRP = "/m/015p6", "/m/020bb7", "/m/07pggtn"
APPLAUSE, CROWD, CLAPPING = "/m/028ght", "/m/03qtwd", "/m/0l15bq"

#: OpenSFX entry title (the quoted start of its description) → labels.
OPENSFX_LABELS: dict[str, tuple[str, ...]] = {
    "Factory Whistle": ("/m/06hck5", "/m/0l156k"),
    "Steam train station departure": (TRAIN, RAIL, "/m/06hck5"),
    "Steam engine going in tunnel": (TRAIN, RAIL, "/m/06wzb"),
    "Ship horn": (SHIP, BOAT, FOGHORN),
    "Ferry horn": (SHIP, BOAT, FOGHORN),
    "Propeller plane start": (AIRCRAFT, FIXED_WING, PROPELLER, ENGINE),
    "Early jet take off": (AIRCRAFT, FIXED_WING, JET),
    "Diesel/electric train station departure": (TRAIN, RAIL, TRAIN_HORN),
    "Level crossing": (RAIL, "/m/07phxs1"),
    "Crash": ("/m/07pjjrj",),
    "Big crash": ("/m/07pjjrj",),
    "Explosion": ("/m/014zdl",),
    "Cash till": ("/m/024dl",),
    "Beep": ("/m/02fs_r",),
    "Morse": ("/m/02fs_r",),
    "Helicopter": ("/m/09ct_", AIRCRAFT),
    "Truck/old bus start, pull away": ("/m/07r04", MOTOR, VEHICLE, ENGINE),
    "Truck/old bus start, pull away with horn": ("/m/07r04", MOTOR, VEHICLE, ENGINE, "/m/05x_td"),
    "Modern bus start": ("/m/01bjv", MOTOR, VEHICLE, ENGINE),
    "Old bus start": ("/m/01bjv", MOTOR, VEHICLE, ENGINE),
    "Applause": (APPLAUSE, CROWD, CLAPPING),
    "Jackhammer": ("/m/03p19w", POWER_TOOL, TOOLS),
    "Modern car horn": ("/m/0912c9", "/m/0k4j", VEHICLE),
    "Sheep": ("/m/07bgp", "/m/07q0h5t", LIVESTOCK, ANIMAL),
    "Cow": ("/m/01xq0k1", "/m/07rpkh9", LIVESTOCK, ANIMAL),
    "Horse": ("/m/03k3r", "/m/07q5rw0", LIVESTOCK, ANIMAL),
    "Building bridge": ("/m/03l9g", TOOLS),
    "Sawmill": ("/m/01b82r", POWER_TOOL, TOOLS),
    "Lumber mill: Chainsaw": ("/m/01j4z9", POWER_TOOL, TOOLS),
    "Lumber mill: Crashing tree": ("/m/083vt", "/m/07qs1cx"),
    "Wind": (WIND, WIND_NOISE),
    "Heavy wind": (WIND, WIND_NOISE),
    "Mach 1+ Jet take off": (AIRCRAFT, FIXED_WING, JET),
    "Modern jet take off": (AIRCRAFT, FIXED_WING, JET),
    "Maglev train station departure": (TRAIN, RAIL),
    "Monorail train station departure": (TRAIN, RAIL),
    "Tropical: Bird (1)": (BIRD, BIRD_CALL, CHIRP, WILD, ANIMAL),
    "Tropical: Bird (2)": (BIRD, BIRD_CALL, CHIRP, WILD, ANIMAL),
    "Tropical: Lion roar": ("/m/0cdnk", "/m/04cvmfc", WILD, ANIMAL),
    "Tropical: Monkeys": (WILD, ANIMAL),
}
#: Which OpenSFX sounds work as a continuous background (looped under a scene).
OPENSFX_AMBIENCES = ("Wind", "Heavy wind", "Applause", "Tropical: Bird (1)", "Tropical: Bird (2)")

FREEDESKTOP_LABELS: dict[str, tuple[str, ...]] = {
    "alarm-clock-elapsed.oga": ("/m/046dlr", "/m/07pp_mv"),
    "bell.oga": ("/m/0395lw", "/m/07phxs1"),
    "camera-shutter.oga": ("/m/0dv5r", "/m/07bjf"),
    "complete.oga": ("/m/0f8s22",),
    "phone-incoming-call.oga": ("/m/07cx4", "/m/01hnzm"),
    "phone-outgoing-busy.oga": ("/m/07cx4", "/m/01z47d"),
    "phone-outgoing-calling.oga": ("/m/07cx4", "/m/07pp8cl"),
    "trash-empty.oga": ("/t/dd00112",),
    "message-new-instant.oga": ("/m/07phxs1",),
    "window-attention.oga": ("/m/07phxs1",),
}


@functools.lru_cache(maxsize=1)
def opensfx() -> dict[str, bytes]:
    """OpenSFX's WAV files by entry title. The ``.cat`` archive is a table of (offset, size)
    pairs (the first offset's top bit is a format flag), then per entry a length-prefixed
    description followed by a RIFF WAV."""
    with open(OPENSFX_CAT, "rb") as handle:
        data = handle.read()
    count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    entries = {}
    for index in range(count):
        offset, size = struct.unpack_from("<II", data, 8 * index)
        offset &= 0x7FFFFFFF
        length = data[offset]
        description = data[offset + 1: offset + 1 + length].rstrip(b"\0").decode("latin-1")
        wav = data[offset + 1 + length: offset + size]
        title = description.split('"')[1] if description.startswith('"') else description
        if wav.startswith(b"RIFF"):
            entries.setdefault(title, wav)
    return entries


@functools.lru_cache(maxsize=64)
def opensfx_audio(title: str) -> np.ndarray:
    audio = signals.decode_bytes(opensfx()[title])
    audio.setflags(write=False)
    return audio


def check_sources() -> None:
    """Raise if a labelled source is absent (a package changed its content)."""
    missing = [title for title in OPENSFX_LABELS if title not in opensfx()]
    missing += [name for name in FREEDESKTOP_LABELS if not os.path.exists(os.path.join(FREEDESKTOP_DIR, name))]
    if missing or not speech_files() or not music_files():
        raise RuntimeError(f"recordings missing from their Debian packages: {missing or 'asterisk sounds'}")


def event(rand: random.Random) -> tuple[np.ndarray, tuple[str, ...], str]:
    """A labelled sound event: (audio, labels, source name)."""
    if rand.random() < 0.7:
        title = rand.choice(sorted(set(OPENSFX_LABELS) - set(OPENSFX_AMBIENCES)))
        return opensfx_audio(title), OPENSFX_LABELS[title], f"opensfx:{title}"
    name = rand.choice(sorted(FREEDESKTOP_LABELS))
    return signals.read(os.path.join(FREEDESKTOP_DIR, name)), FREEDESKTOP_LABELS[name], f"freedesktop:{name}"


def ambience(rand: random.Random, length: int) -> tuple[np.ndarray, tuple[str, ...], str]:
    """A continuous background of ``length`` samples (a recording, looped if short)."""
    title = rand.choice(OPENSFX_AMBIENCES)
    audio = signals.stereo(opensfx_audio(title))
    offset = rand.randrange(len(audio))
    audio = np.concatenate([audio[offset:], audio[:offset]])
    return signals.loop(audio, length, crossfade_s=0.3), OPENSFX_LABELS[title], f"opensfx:{title}"


@functools.lru_cache(maxsize=1)
def speech_files() -> tuple[str, ...]:
    """Allison's prompts longer than half a second (the rest are beeps and single letters)."""
    files = sorted(glob.glob(os.path.join(ASTERISK_SPEECH_DIR, "**", "*.wav"), recursive=True))
    return tuple(f for f in files if os.path.getsize(f) > 8000 and "beep" not in os.path.basename(f))


def recorded_speech(rand: random.Random, length: int) -> tuple[np.ndarray, tuple[str, ...], str]:
    """Prompts one after another with short pauses, ``length`` samples, mono."""
    track = np.zeros((length, 1), np.float32)
    at, names = signals.seconds(rand.uniform(0, 0.5)), []
    while at < length - signals.seconds(0.5):
        path = rand.choice(speech_files())
        prompt = signals.mono(signals.read(path))
        signals.place(track, prompt, at)
        names.append(os.path.basename(path))
        at += len(prompt) + signals.seconds(rand.uniform(0.15, 0.8))
    return track, (SPEECH, FEMALE_SPEECH), "asterisk:" + ",".join(names[:3])


@functools.lru_cache(maxsize=1)
def music_files() -> tuple[str, ...]:
    return tuple(sorted(glob.glob(os.path.join(ASTERISK_MUSIC_DIR, "*.wav"))))


def recorded_music(rand: random.Random, length: int) -> tuple[np.ndarray, tuple[str, ...], str]:
    path = rand.choice(music_files())
    return signals.excerpt(signals.read(path), length, rand), ("/m/04rlf",), f"asterisk-moh:{os.path.basename(path)}"
