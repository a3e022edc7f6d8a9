"""Recipes for the 10 s clips of the pretraining corpus: what each holds and its AudioSet labels.

A recipe is a function ``(rand, seconds) -> Clip``. The corpus deals recipes in fixed proportions
(``RECIPES``), so even a small corpus has every kind of clip, and a full one has predictable
label counts. Levels vary on purpose (speech-to-music and speech-to-noise ratios, final loudness),
and some clips get a synthetic room.
"""
from __future__ import annotations

import dataclasses
import random

import numpy as np

from corpora import music, recordings, signals, speech

SPEECH, MALE, FEMALE, SYNTHESIZER = "/m/09x0r", "/m/05zppz", "/m/02zsn", "/m/0brhx"
WHISPERING, CONVERSATION = "/m/02rtxlg", "/m/01h8n0"
SEX_LABELS = {"M": (MALE,), "F": (FEMALE,), "W": (WHISPERING,)}
WHITE_NOISE, PINK_NOISE, NOISE = "/m/0chx_", "/m/0cj0r", "/m/096m7z"


@dataclasses.dataclass
class Clip:
    audio: np.ndarray             # float32 [n, channels] at 48 kHz
    labels: list[str]             # AudioSet mids, in the order they were added
    details: dict                 # what made it (recipe, speakers, programs, sources)


# ------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------


def _speech_track(rand: random.Random, length: int, speakers: list[tuple[str, str, str]]) -> np.ndarray:
    """Utterances filling ``length`` samples, speakers taking turns, mono."""
    track = np.zeros((length, 1), np.float32)
    at, turn = signals.seconds(rand.uniform(0.0, 0.6)), 0
    while at < length - signals.seconds(0.8):
        language, variant, _ = speakers[turn % len(speakers)]
        utterance = signals.gain_to(speech.speak_random(rand, language, variant), -20 + rand.uniform(-3, 3))
        signals.place(track, utterance, at)
        at += len(utterance) + signals.seconds(rand.uniform(0.2, 0.9))
        turn += 1
    return track


def _speaker_labels(speakers) -> list[str]:
    labels = [SPEECH]
    for _, _, sex in speakers:
        labels += SEX_LABELS[sex]
    return labels + [SYNTHESIZER]


def _music(rand: random.Random, length: int) -> tuple[np.ndarray, list[str], dict]:
    parts, labels = music.ensemble(rand, length / signals.SAMPLE_RATE + 0.5)
    audio = music.render(parts, length / signals.SAMPLE_RATE)
    return audio, labels, {"programs": [p.program for p in parts if p.channel != music.DRUM_CHANNEL],
                           "drums": any(p.channel == music.DRUM_CHANNEL for p in parts)}


def _background(rand: random.Random, length: int) -> tuple[np.ndarray, list[str], str]:
    """A recorded ambience, the sea from a SoundFont, or coloured noise."""
    choice = rand.random()
    if choice < 0.6:
        audio, labels, source = recordings.ambience(rand, length)
        return audio, list(labels), source
    if choice < 0.8:
        seconds = length / signals.SAMPLE_RATE
        notes = tuple((3.0 * i, 3.5, rand.randint(50, 70), rand.randint(70, 110)) for i in range(int(seconds / 3) + 1))
        audio = music.render([music.Part(0, 0, 122, notes)], seconds)
        return audio, list(music.program_labels(122)), "FluidR3_GM:seashore"
    exponent = rand.choice((0.0, 1.0))
    audio = signals.colored_noise(length, exponent, signals.np_rng("noise", rand.random()))
    return audio, [NOISE, WHITE_NOISE if exponent == 0 else PINK_NOISE], f"noise:1/f^{exponent:g}"


def _noise_floor(rand: random.Random, audio: np.ndarray, low_db=-75.0, high_db=-55.0) -> np.ndarray:
    noise = signals.colored_noise(len(audio), rand.choice((1.0, 2.0)), signals.np_rng("floor", rand.random()),
                                  channels=audio.shape[1])
    return audio + noise * np.float32(10 ** (rand.uniform(low_db, high_db) / 20))


# ------------------------------------------------------------------------------------------
# Recipes
# ------------------------------------------------------------------------------------------


def speech_clip(rand: random.Random, length: int) -> Clip:
    speaker = speech.random_speaker(rand)
    audio = _speech_track(rand, length, [speaker])
    if rand.random() < 0.5:
        audio = signals.room(audio, rand)
    return Clip(_noise_floor(rand, audio), _speaker_labels([speaker]), {"speakers": [speaker]})


def whisper_clip(rand: random.Random, length: int) -> Clip:
    speaker = speech.random_speaker(rand, whisper=True)
    audio = _speech_track(rand, length, [speaker])
    return Clip(_noise_floor(rand, audio), _speaker_labels([speaker]), {"speakers": [speaker]})


def conversation_clip(rand: random.Random, length: int) -> Clip:
    first = speech.random_speaker(rand)
    while True:
        second = speech.random_speaker(rand)
        if second[1] != first[1]:
            break
    second = (first[0], second[1], second[2])  # one language, two voices
    audio = signals.room(_speech_track(rand, length, [first, second]), rand)
    labels = _speaker_labels([first, second]) + [CONVERSATION]
    return Clip(_noise_floor(rand, audio), labels, {"speakers": [first, second]})


def recorded_speech_clip(rand: random.Random, length: int) -> Clip:
    audio, labels, source = recordings.recorded_speech(rand, length)
    return Clip(audio, list(labels), {"source": source})


def ensemble_clip(rand: random.Random, length: int) -> Clip:
    audio, labels, details = _music(rand, length)
    return Clip(audio, labels, details)


def solo_clip(rand: random.Random, length: int) -> Clip:
    program = rand.choice([p for p in range(120) if p // 8 != 12])
    seconds = length / signals.SAMPLE_RATE
    audio = music.render(music.solo(rand, program, seconds), seconds)
    return Clip(audio, list(music.program_labels(program)), {"programs": [program]})


def drums_clip(rand: random.Random, length: int) -> Clip:
    seconds = length / signals.SAMPLE_RATE
    parts, labels = music.drum_kit(rand, seconds + 0.5)
    audio = music.render(parts, seconds)
    if rand.random() < 0.5:
        audio = signals.room(audio, rand, wet=(0.05, 0.25))
    return Clip(audio, labels + [music.MUSIC], {"kit": parts[0].soundfont})


def recorded_music_clip(rand: random.Random, length: int) -> Clip:
    audio, labels, source = recordings.recorded_music(rand, length)
    return Clip(audio, list(labels), {"source": source})


def speech_over_music_clip(rand: random.Random, length: int) -> Clip:
    speaker = speech.random_speaker(rand)
    voice = signals.stereo(_speech_track(rand, length, [speaker]))
    backing, music_labels, details = _music(rand, length)
    ratio_db = rand.uniform(6, 18)
    audio = signals.gain_to(voice, -20) + signals.gain_to(backing, -20 - ratio_db)
    return Clip(audio, _speaker_labels([speaker]) + music_labels,
                {"speakers": [speaker], "speech_to_music_db": round(ratio_db, 1), **details})


def speech_in_ambience_clip(rand: random.Random, length: int) -> Clip:
    speaker = speech.random_speaker(rand)
    voice = signals.stereo(_speech_track(rand, length, [speaker]))
    if rand.random() < 0.5:
        voice = signals.room(voice, rand)
    background, background_labels, source = _background(rand, length)
    snr_db = rand.uniform(0, 15)
    audio = signals.gain_to(voice, -20) + signals.gain_to(background, -20 - snr_db)
    return Clip(audio, _speaker_labels([speaker]) + background_labels,
                {"speakers": [speaker], "background": source, "snr_db": round(snr_db, 1)})


def events_clip(rand: random.Random, length: int) -> Clip:
    """Two to four sound events at random times over a quiet background."""
    background, labels, source = _background(rand, length)
    audio = signals.gain_to(background, -45)
    sources = [source]
    for _ in range(rand.randint(2, 4)):
        sound, event_labels, name = recordings.event(rand)
        sound = signals.fade(signals.excerpt(sound, min(len(sound), signals.seconds(rand.uniform(1.5, 6))), rand))
        signals.place(audio, signals.gain_to(sound, rand.uniform(-30, -18)),
                      rand.randrange(max(1, length - len(sound) // 2)))
        labels += event_labels
        sources.append(name)
    return Clip(audio, labels, {"sources": sources})


def ambience_clip(rand: random.Random, length: int) -> Clip:
    audio, labels, source = _background(rand, length)
    return Clip(audio, labels, {"background": source})


#: Recipe name → (function, share of the corpus in parts).
RECIPES = {
    "speech": (speech_clip, 16),
    "conversation": (conversation_clip, 7),
    "whisper": (whisper_clip, 2),
    "recorded_speech": (recorded_speech_clip, 5),
    "music": (ensemble_clip, 18),
    "solo_instrument": (solo_clip, 10),
    "drum_kit": (drums_clip, 7),
    "recorded_music": (recorded_music_clip, 4),
    "speech_over_music": (speech_over_music_clip, 11),
    "speech_in_ambience": (speech_in_ambience_clip, 8),
    "sound_events": (events_clip, 8),
    "ambience": (ambience_clip, 4),
}


def schedule(count: int, seed: int) -> list[str]:
    """Recipe names for ``count`` clips: shares by largest remainder (every recipe at least once
    when ``count`` allows), in a seeded order."""
    names = sorted(RECIPES)
    total = sum(share for _, share in RECIPES.values())
    exact = {name: count * RECIPES[name][1] / total for name in names}
    counts = {name: int(exact[name]) for name in names}
    if count >= len(names):
        for name in names:
            counts[name] = max(1, counts[name])
    by_remainder = sorted(names, key=lambda name: (counts[name] - exact[name], name))
    i = 0
    while sum(counts.values()) < count:
        counts[by_remainder[i % len(names)]] += 1
        i += 1
    while sum(counts.values()) > count:
        largest = max(names, key=lambda name: (counts[name], name))
        counts[largest] -= 1
    order = [name for name in names for _ in range(counts[name])]
    signals.rng(seed, "schedule", count).shuffle(order)
    return order


def make(recipe: str, seed: int, index: int, seconds: float = 10.0) -> Clip:
    """Clip ``index`` of the corpus: the recipe's audio, levelled, labels de-duplicated."""
    rand = signals.rng(seed, "pretrain", index, recipe)
    length = signals.seconds(seconds)
    clip = RECIPES[recipe][0](rand, length)
    audio = clip.audio[:length]
    if len(audio) < length:
        audio = np.concatenate([audio, np.zeros((length - len(audio), audio.shape[1]), np.float32)])
    clip.audio = signals.finish(audio, rand.uniform(-32, -18))
    clip.labels = list(dict.fromkeys(clip.labels))
    clip.details = {"recipe": recipe, **clip.details}
    return clip
