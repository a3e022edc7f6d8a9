"""Music from General MIDI: generated phrases rendered through FluidSynth with SoundFonts.

The notes are generated here (seeded: key, scale, tempo, melody, chords, bass line, drum
pattern) and rendered in-process by libfluidsynth through pyfluidsynth, so no MIDI file and no
synthesiser process is needed per clip. Each render uses a fresh synthesiser: FluidSynth's
16-bit output dithers with a running index and its effects keep state, so a reused synthesiser
would make a clip depend on the clips rendered before it in the same worker. Loading a
SoundFont again is cheap because libfluidsynth caches samples per process (a keeper synthesiser
holds each SoundFont so the cache stays warm).
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import random

import numpy as np

from corpora import signals

SOUNDFONTS = {
    # name → (path, Debian package)
    "FluidR3_GM": ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm"),
    "TimGM6mb": ("/usr/share/sounds/sf2/TimGM6mb.sf2", "timgm6mb-soundfont"),
    "Black_Pearl": ("/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2", "avldrums.lv2-soundfont"),
    "Red_Zeppelin": ("/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2", "avldrums.lv2-soundfont"),
}

#: The 16 General MIDI families, program // 8.
FAMILIES = ("piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble",
            "brass", "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic",
            "percussive", "sound_effects")

MUSIC, INSTRUMENT = "/m/04rlf", "/m/04szw"
KEYBOARD, PIANO, E_PIANO, HARPSICHORD = "/m/05148p4", "/m/05r5c", "/m/01s0ps", "/m/03q5t"
ORGAN, HAMMOND, SYNTH = "/m/013y1f", "/m/03gvt", "/m/0l14qv"
MALLET, GLOCK, VIBES, MARIMBA, TUBULAR, BELL = "/m/0j45pbj", "/m/0dwtp", "/m/0dwt5", "/m/0dwsp", "/m/016622", "/m/0395lw"
PLUCKED, GUITAR, AC_GUITAR, EL_GUITAR, BASS_GUITAR, DOUBLE_BASS = (
    "/m/0fx80y", "/m/0342h", "/m/042v_gx", "/m/02sgy", "/m/018vs", "/m/02fsn")
BOWED, VIOLIN, CELLO, STRINGS, PIZZICATO, HARP, TIMPANI = (
    "/m/0l14_3", "/m/07y_7", "/m/01xqw", "/m/02qmj0d", "/m/0d8_n", "/m/03m5k", "/m/011k_j")
ORCHESTRA, CHOIR, SYNTH_SINGING = "/m/05pd6", "/m/0l14jd", "/t/dd00006"
BRASS, TRUMPET, TROMBONE, FRENCH_HORN = "/m/01kcd", "/m/07gql", "/m/07c6l", "/m/0319l"
WIND, SAX, CLARINET, FLUTE, WHISTLE = "/m/085jw", "/m/06ncr", "/m/01wy6", "/m/0l14j_", "/m/0l156k"
PERCUSSION, STEELPAN, WOOD_BLOCK, DRUM, CYMBAL = "/m/0l14md", "/m/0l156b", "/m/01sm1g", "/m/026t6", "/m/01qbl"
DRUM_KIT, SNARE, BASS_DRUM, HI_HAT = "/m/02hnl", "/m/06rvn", "/m/0bm02", "/m/03qtq"

_FAMILY_LABELS = (
    (KEYBOARD, PIANO), (MALLET,), (KEYBOARD, ORGAN), (PLUCKED, GUITAR), (),
    (BOWED,), (STRINGS,), (BRASS,), (WIND,), (WIND, FLUTE), (SYNTH,), (SYNTH,), (SYNTH,),
    (), (PERCUSSION,), (),
)
#: Labels for single programs, added to their family's.
_PROGRAM_LABELS = {
    4: (E_PIANO,), 5: (E_PIANO,), 6: (HARPSICHORD,), 7: (E_PIANO,),
    8: (BELL,), 9: (GLOCK,), 11: (VIBES,), 12: (MARIMBA,), 13: (MARIMBA,), 14: (TUBULAR, BELL),
    15: (PLUCKED,), 16: (HAMMOND,), 17: (HAMMOND,), 21: ("/m/0mkg",), 22: ("/m/03qjg",),
    23: ("/m/0mkg",), 24: (AC_GUITAR,), 25: (AC_GUITAR,), 26: (EL_GUITAR,), 27: (EL_GUITAR,),
    28: (EL_GUITAR,), 29: (EL_GUITAR,), 30: (EL_GUITAR,), 31: (EL_GUITAR,),
    32: (DOUBLE_BASS,), 33: (BASS_GUITAR,), 34: (BASS_GUITAR,), 35: (BASS_GUITAR,), 36: (BASS_GUITAR,),
    37: (BASS_GUITAR,), 38: (SYNTH,), 39: (SYNTH,),
    40: (VIOLIN,), 41: (VIOLIN,), 42: (CELLO,), 43: (DOUBLE_BASS,), 44: (STRINGS,),
    45: (PIZZICATO, STRINGS), 46: (HARP, PLUCKED), 47: (TIMPANI, PERCUSSION, DRUM),
    48: (BOWED,), 49: (BOWED,), 50: (SYNTH,), 51: (SYNTH,), 52: (CHOIR,), 53: (CHOIR,),
    54: (SYNTH_SINGING,), 55: (ORCHESTRA,),
    56: (TRUMPET,), 57: (TROMBONE,), 59: (TRUMPET,), 60: (FRENCH_HORN,), 62: (SYNTH,), 63: (SYNTH,),
    64: (SAX,), 65: (SAX,), 66: (SAX,), 67: (SAX,), 71: (CLARINET,), 78: (WHISTLE,),
    104: ("/m/0jtg0", PLUCKED), 105: ("/m/018j2", PLUCKED), 106: (PLUCKED,), 107: ("/m/01bns_", PLUCKED),
    109: ("/m/0192l", WIND), 110: (VIOLIN, BOWED), 111: (WIND,),
    112: (BELL,), 114: (STEELPAN,), 115: (WOOD_BLOCK,), 116: (DRUM,), 117: (DRUM,), 118: (DRUM, SYNTH),
    119: (CYMBAL,),
    120: (GUITAR,), 121: ("/m/0lyf6",), 122: ("/m/05kq4", "/m/034srq"), 123: ("/m/015p6", "/m/07pggtn"),
    124: ("/m/07cx4", "/m/07pp8cl"), 125: ("/m/09ct_",), 126: ("/m/028ght",), 127: ("/m/032s66",),
}
#: Programs that are not musical instruments playing music (GM's sound effects family).
EFFECT_PROGRAMS = frozenset(range(120, 128))

#: Comfortable MIDI note ranges: by family, then by program where it differs.
_FAMILY_RANGES = ((45, 84), (60, 96), (43, 84), (40, 76), (28, 55), (55, 88), (48, 79), (52, 79),
                  (50, 80), (62, 96), (48, 84), (45, 79), (48, 79), (48, 79), (48, 72), (55, 72))
_PROGRAM_RANGES = {41: (48, 76), 42: (36, 67), 43: (28, 55), 46: (36, 90), 47: (40, 55),
                   57: (40, 67), 58: (28, 55), 60: (41, 72), 67: (36, 64), 70: (34, 65),
                   72: (74, 100), 116: (36, 55)}

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
          "dorian": (0, 2, 3, 5, 7, 9, 10), "pentatonic": (0, 2, 4, 7, 9),
          "blues": (0, 3, 5, 6, 7, 10), "mixolydian": (0, 2, 4, 5, 7, 9, 10)}
DRUM_CHANNEL = 9
KICK, SNARE_NOTE, CLOSED_HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 42, 46, 49, 51
TOMS = (41, 43, 45, 47, 48, 50)


def family(program: int) -> str:
    return FAMILIES[program // 8]


def program_labels(program: int) -> tuple[str, ...]:
    """AudioSet mids for one GM program (Music and Musical instrument for instruments)."""
    base = () if program in EFFECT_PROGRAMS else (MUSIC, INSTRUMENT)
    return tuple(dict.fromkeys(base + _FAMILY_LABELS[program // 8] + _PROGRAM_LABELS.get(program, ())))


def note_range(program: int) -> tuple[int, int]:
    return _PROGRAM_RANGES.get(program, _FAMILY_RANGES[program // 8])


# ------------------------------------------------------------------------------------------
# Notes
# ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Part:
    """One channel: a SoundFont preset and its notes ``(start_s, duration_s, key, velocity)``."""

    channel: int
    bank: int
    program: int
    notes: tuple[tuple[float, float, int, int], ...]
    soundfont: str = "FluidR3_GM"


@dataclasses.dataclass(frozen=True)
class Style:
    root: int          # pitch class of the key
    scale: tuple[int, ...]
    beat_s: float      # one beat at the tempo

    @classmethod
    def random(cls, rand: random.Random, tempo=(70, 160)) -> "Style":
        name = rand.choice(sorted(SCALES))
        return cls(rand.randrange(12), SCALES[name], 60.0 / rand.uniform(*tempo))

    def keys(self, low: int, high: int) -> list[int]:
        return [k for k in range(low, high + 1) if (k - self.root) % 12 in self.scale]


def melody(rand: random.Random, style: Style, low: int, high: int, seconds: float, *,
           start_s: float = 0.0, chord_chance: float = 0.0, velocity=(70, 115)) -> list:
    """A random walk over the scale with rests, note lengths of ½ to 2 beats."""
    keys = style.keys(low, high) or list(range(low, high + 1))
    position = rand.randrange(len(keys) // 4, max(len(keys) // 4 + 1, 3 * len(keys) // 4))
    notes, t = [], start_s
    while t < start_s + seconds - 0.1:
        length = style.beat_s * rand.choice((0.5, 0.5, 1, 1, 1, 1.5, 2))
        if rand.random() < 0.12:
            t += length  # a rest
            continue
        position = min(len(keys) - 1, max(0, position + rand.choice((-2, -1, -1, 0, 1, 1, 2, 3, -3))))
        vel = rand.randint(*velocity)
        duration = length * rand.uniform(0.6, 1.0)
        notes.append((t, duration, keys[position], vel))
        if rand.random() < chord_chance:
            for step in (2, 4):
                if position + step < len(keys):
                    notes.append((t, duration, keys[position + step], max(1, vel - 10)))
        t += length
    return notes


def chords(rand: random.Random, style: Style, low: int, seconds: float, *, arpeggio: bool) -> list:
    """A progression of triads from the scale, a bar (4 beats) each, held or arpeggiated."""
    keys = style.keys(low, low + 24)
    notes, t = [], 0.0
    while t < seconds:
        degree = rand.choice((0, 3, 4, 5, 0, 4))
        triad = [keys[min(len(keys) - 1, degree + step)] for step in (0, 2, 4)]
        vel = rand.randint(55, 90)
        if arpeggio:
            for i in range(8):
                notes.append((t + i * style.beat_s / 2, style.beat_s / 2, triad[i % 3] + 12 * (i // 3 % 2), vel))
        else:
            notes.extend((t, 4 * style.beat_s * 0.95, key, vel) for key in triad)
        t += 4 * style.beat_s
    return notes


def bass_line(rand: random.Random, style: Style, seconds: float) -> list:
    keys = style.keys(28, 52)
    notes, t = [], 0.0
    while t < seconds:
        root = keys[rand.choice((0, 3, 4, 5)) % len(keys)]
        for beat in range(4):
            key = root if beat % 2 == 0 else root + rand.choice((0, 7, 12))
            notes.append((t + beat * style.beat_s, style.beat_s * 0.9, key, rand.randint(80, 110)))
        t += 4 * style.beat_s
    return notes


def drum_pattern(rand: random.Random, style: Style, seconds: float) -> list:
    """A rock/pop groove on GM drum keys: kick, snare, hats or ride, a crash, fills."""
    notes = [(0.0, 0.5, CRASH, 110)]
    eighth = style.beat_s / 2
    hat = rand.choice((CLOSED_HAT, CLOSED_HAT, RIDE))
    kick_extra = rand.random() < 0.5
    t, bar = 0.0, 0
    while t < seconds:
        fill = bar % 4 == 3 and rand.random() < 0.6
        for step in range(8):
            at = t + step * eighth
            if fill and step >= 4:
                notes.append((at, eighth, rand.choice(TOMS), rand.randint(85, 120)))
                continue
            notes.append((at, eighth, hat if not (step == 7 and rand.random() < 0.3) else OPEN_HAT,
                          rand.randint(55, 90)))
            if step in (0, 4) or (kick_extra and step == 5):
                notes.append((at, eighth, KICK, rand.randint(95, 120)))
            if step in (2, 6):
                notes.append((at, eighth, SNARE_NOTE, rand.randint(90, 120)))
        t += 8 * eighth
        bar += 1
        if fill:
            notes.append((t, 0.5, CRASH, 110))
    return [n for n in notes if n[0] < seconds]


def drum_labels(notes) -> list[str]:
    """Labels of a drum part from the GM drum keys it plays."""
    keys = {note[2] for note in notes}
    labels = [DRUM_KIT, DRUM, PERCUSSION]
    labels += [BASS_DRUM] if KICK in keys else []
    labels += [SNARE] if SNARE_NOTE in keys else []
    labels += [HI_HAT] if keys & {CLOSED_HAT, OPEN_HAT} else []
    labels += [CYMBAL] if keys & {CRASH, RIDE} else []
    return labels


# ------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _keeper(name: str):
    """A synthesiser that holds ``name`` loaded for the life of the process (warm sample cache)."""
    synth = _new_synth()
    if synth.sfload(SOUNDFONTS[name][0]) < 0:
        raise RuntimeError(f"FluidSynth cannot load {SOUNDFONTS[name][0]} (package {SOUNDFONTS[name][1]})")
    return synth


@functools.lru_cache(maxsize=1)
def _write_float():
    """``fluid_synth_write_float`` (pyfluidsynth wraps only the 16-bit, dithered output)."""
    import fluidsynth

    function = fluidsynth._fl.fluid_synth_write_float
    function.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                         ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def _new_synth():
    import fluidsynth

    return fluidsynth.Synth(gain=0.4, samplerate=float(signals.SAMPLE_RATE),
                            **{"synth.cpu-cores": 1, "synth.polyphony": 256})


def render(parts: list[Part], seconds: float, *, tail_s: float = 0.0) -> np.ndarray:
    """Render ``parts`` to float32 stereo ``[n, 2]`` of ``seconds`` (+ ``tail_s``) at 48 kHz."""

    synth = _new_synth()
    try:
        fonts = {}
        for part in parts:
            if part.soundfont not in fonts:
                _keeper(part.soundfont)
                fonts[part.soundfont] = synth.sfload(SOUNDFONTS[part.soundfont][0])
            synth.program_select(part.channel, fonts[part.soundfont], part.bank, part.program)
        events = []
        for part in parts:
            for start, duration, key, velocity in part.notes:
                events.append((signals.seconds(start), 1, part.channel, key, velocity))
                events.append((signals.seconds(start + duration), 0, part.channel, key, 0))
        events.sort()  # by time, note-offs before note-ons at the same sample
        total = signals.seconds(seconds + tail_s)
        left = np.zeros(total, np.float32)
        right = np.zeros(total, np.float32)
        write = _write_float()

        def advance(frm: int, to: int) -> None:
            if to > frm:
                write(synth.synth, to - frm, left[frm:].ctypes.data, 0, 1, right[frm:].ctypes.data, 0, 1)

        now = 0
        for at, kind, channel, key, velocity in events:
            at = min(at, total)
            advance(now, at)
            now = at
            if kind:
                synth.noteon(channel, key, velocity)
            else:
                synth.noteoff(channel, key)
        advance(now, total)
    finally:
        synth.delete()
    return np.stack([left, right], axis=1)


# ------------------------------------------------------------------------------------------
# Pieces
# ------------------------------------------------------------------------------------------


def solo(rand: random.Random, program: int, seconds: float, soundfont: str = "FluidR3_GM",
         style: Style | None = None) -> list[Part]:
    """A phrase for one program (the instrument task and solo clips)."""
    style = style or Style.random(rand)
    low, high = note_range(program)
    if program // 8 in (14, 15):  # percussive and sound effects: rhythm around a few keys
        notes, t = [], 0.0
        keys = [rand.randint(low, high) for _ in range(3)]
        while t < seconds - 0.1:
            length = style.beat_s * rand.choice((0.5, 1, 1, 2))
            notes.append((t, length * 0.9, rand.choice(keys), rand.randint(80, 120)))
            t += length
    else:
        polyphonic = program // 8 in (0, 2, 3, 6, 11)
        notes = melody(rand, style, low, high, seconds, chord_chance=0.3 if polyphonic else 0.0)
    return [Part(0, 0, program, tuple(notes), soundfont)]


def ensemble(rand: random.Random, seconds: float, soundfont: str = "FluidR3_GM") -> tuple[list[Part], list[str]]:
    """A band: optional drums and bass, chords, a melody. Returns parts and AudioSet labels."""
    style = Style.random(rand)
    parts, labels = [], [MUSIC]
    instruments = [p for p in range(112) if p // 8 not in (12,)]  # no sound-effect pads
    melody_program = rand.choice(instruments)
    low, high = note_range(melody_program)
    parts.append(Part(0, 0, melody_program, tuple(melody(rand, style, max(low, 52), max(high, 64), seconds)),
                      soundfont))
    labels += program_labels(melody_program)
    chord_program = rand.choice([p for p in instruments if p // 8 in (0, 2, 3, 5, 6, 11)])
    parts.append(Part(1, 0, chord_program, tuple(chords(rand, style, 48, seconds, arpeggio=rand.random() < 0.4)),
                      soundfont))
    labels += program_labels(chord_program)
    if rand.random() < 0.75:
        bass_program = rand.choice(range(32, 40))
        parts.append(Part(2, 0, bass_program, tuple(bass_line(rand, style, seconds)), soundfont))
        labels += program_labels(bass_program)
    if rand.random() < 0.7:
        parts.append(Part(DRUM_CHANNEL, 128, 0, tuple(drum_pattern(rand, style, seconds)), soundfont))
        labels += drum_labels(parts[-1].notes)
    return parts, list(dict.fromkeys(labels))


def drum_kit(rand: random.Random, seconds: float) -> tuple[list[Part], list[str]]:
    """A groove on one of the acoustic kits of avldrums (multi-sampled recordings)."""
    kit = rand.choice(("Black_Pearl", "Red_Zeppelin"))
    style = Style.random(rand, tempo=(75, 150))
    notes = tuple(drum_pattern(rand, style, seconds))
    return [Part(0, 0, 0, notes, kit)], drum_labels(notes)
