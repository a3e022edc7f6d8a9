"""The test corpus: small audio files named by real AudioSet YTIDs, generated with ffmpeg.

Every file the pipeline must cope with is here once: the common containers and codecs, sample
formats and rates, channel counts, lengths shorter and longer than a clip, silence, garbage and a
missing id. The content is tones at known frequencies plus a little seeded noise, different per
file (and per channel, and per 10 s chunk of the long file), so tests can check values and not
just shapes.

The YTIDs, times and labels are rows of the real ``pipeline/data/balanced_train_segments.csv``
(rows starting at 0.000, so the files stay short), with one edit: the long file's row ends at
35.000, because users' own CSVs have segments longer than AudioSet's 10 s.

Used through the fixtures of ``tests/conftest.py`` (made once per test process); ``python tests/audio_corpus.py DIR``
writes the corpus to DIR for a manual look.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
import random
import struct
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BALANCED_CSV = os.path.join(REPO, "pipeline", "data", "balanced_train_segments.csv")

CLIP_S = 10.0                 # clip length (docs/design.md)
MIN_REMAINDER_S = 2.0         # default minimum looped remainder (docs/design.md)
NOISE_AMPLITUDE = 0.003       # white noise under the tones: "a little"


@dataclasses.dataclass(frozen=True)
class Spec:
    """How one corpus file is made (``ext`` None: no file, the server answers 404)."""

    kind: str
    ext: str | None
    codec_args: tuple[str, ...] = ()
    sample_rate: int = 48000
    channels: int = 2
    duration_s: float = 10.0
    tones_hz: tuple[float, ...] = ()   # one per channel (repeated if fewer)
    csv_end_s: float | None = None     # edited end time of the CSV row (None: the real one)
    file_prefix: str = ""              # "Y" for the Y<ytid>.ext naming of some AudioSet copies
    expression: str | None = None      # an aevalsrc expression instead of tones


# In this order the specs take the first rows of the balanced CSV that start at 0.000 and end at
# 10.000 (the 3 s file's row is a 10 s row too: its video is shorter than the segment, which
# yt-dlp answers with what there is).
SPECS: tuple[Spec, ...] = (
    Spec("wav_s16_mono_16k", "wav", ("-c:a", "pcm_s16le"), 16000, 1, tones_hz=(440.0,),
         file_prefix="Y"),
    Spec("flac_s24_stereo_96k", "flac", ("-c:a", "flac", "-sample_fmt", "s32",
                                         "-bits_per_raw_sample", "24"), 96000, 2,
         tones_hz=(660.0, 990.0)),
    Spec("ogg_vorbis", "ogg", ("-c:a", "libvorbis", "-q:a", "4"), 44100, 2,
         tones_hz=(330.0, 1320.0)),
    Spec("mp3", "mp3", ("-c:a", "libmp3lame", "-b:a", "128k"), 44100, 2, tones_hz=(550.0, 825.0)),
    Spec("m4a_index_at_start", "m4a", ("-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"),
         48000, 2, tones_hz=(770.0, 1155.0)),
    Spec("m4a_index_at_end", "m4a", ("-c:a", "aac", "-b:a", "128k"), 48000, 2,
         tones_hz=(880.0, 1760.0)),
    Spec("six_channels", "wav", ("-c:a", "pcm_s16le"), 48000, 6,
         tones_hz=(200.0, 300.0, 400.0, 500.0, 600.0, 700.0)),
    Spec("short_3s", "flac", ("-c:a", "flac", "-sample_fmt", "s16"), 22050, 1, duration_s=3.0,
         tones_hz=(1000.0,)),
    # 300 Hz in the first 10 s chunk, then 400, 500 and 600 Hz in the 5 s remainder.
    Spec("long_35s", "flac", ("-c:a", "flac", "-sample_fmt", "s16"), 44100, 2, duration_s=35.0,
         csv_end_s=35.0,
         expression="0.3*sin(2*PI*(300+100*floor(t/10))*t)"),
    Spec("silent", "wav", ("-c:a", "pcm_s16le"), 16000, 1, tones_hz=()),
    Spec("corrupt", "m4a"),
    Spec("missing", None),
)

# Outcomes of the failing kinds: (reason, permanent), for the fetch step and for the whole
# pipeline (a silent file fetches fine; the decode step refuses it).
FETCH_FAILURES = {"corrupt": ("decode_error", True), "missing": ("not_found", True)}
PIPELINE_FAILURES = {**FETCH_FAILURES, "silent": ("silent", True)}
# How many requests the rate-limited server answers with 429 before serving.
RATE_LIMITED_REQUESTS = 2


@dataclasses.dataclass(frozen=True)
class Segment:
    """One corpus entry and what the pipeline should make of it."""

    ytid: str
    kind: str
    start_s: float
    end_s: float                       # as in the corpus CSV
    labels: tuple[str, ...]            # AudioSet mids, as in the CSV
    path: str | None                   # served file (None for the missing id)
    duration_s: float                  # seconds of audio the fetched segment holds (0: none)
    sample_rate: int
    channels: int
    tones_hz: tuple[float, ...]        # per channel; for long_35s the tone of each chunk
    chunks: int                        # 10 s examples the segment yields (0 for failures)
    fetch_failure: tuple[str, bool] | None   # (reason, permanent) of fetch_segment, or None
    failure: tuple[str, bool] | None         # (reason, permanent) of the whole pipeline, or None

    @property
    def ext(self) -> str | None:
        return os.path.splitext(self.path)[1].lstrip(".") if self.path else None


@dataclasses.dataclass(frozen=True)
class AudioCorpus:
    directory: str                     # the served files
    csv_text: str                      # official AudioSet format: 3 '#' header lines, then rows
    csv_path: str                      # csv_text written to a file outside ``directory``
    segments: dict[str, Segment]       # by YTID, in CSV order

    def by_kind(self, kind: str) -> Segment:
        for segment in self.segments.values():
            if segment.kind == kind:
                return segment
        raise KeyError(kind)

    @property
    def fetchable(self) -> list[Segment]:
        return [segment for segment in self.segments.values() if segment.fetch_failure is None]

    @property
    def expected_examples(self) -> int:
        return sum(segment.chunks for segment in self.segments.values())


def expected_chunks(duration_s: float, clip_s: float = CLIP_S,
                    min_remainder_s: float = MIN_REMAINDER_S) -> int:
    """As docs/design.md says: consecutive clips; a remainder of at least ``min_remainder_s`` is looped to a
    clip, a shorter one dropped; a source up to one clip long is looped to one clip."""
    if duration_s <= 0:
        return 0
    if duration_s <= clip_s:
        return 1
    full = math.floor(duration_s / clip_s + 1e-9)
    remainder = duration_s - full * clip_s
    return full + (1 if remainder >= min_remainder_s - 1e-9 else 0)


def balanced_rows(count: int, csv_path: str = BALANCED_CSV) -> list[tuple[str, str]]:
    """The first ``count`` (ytid, raw line) rows of the CSV with segment [0.000, 10.000]."""
    rows = []
    with open(csv_path, encoding="utf-8") as csv_file:
        for line in csv_file:
            if line.startswith("#"):
                continue
            fields = [field.strip() for field in line.split(",", 3)]
            if fields[1:3] == ["0.000", "10.000"]:
                rows.append((fields[0], line.rstrip("\r\n")))
                if len(rows) == count:
                    break
    if len(rows) < count:
        raise RuntimeError(f"{csv_path} has only {len(rows)} rows starting at 0.000")
    return rows


def _labels(line: str) -> tuple[str, ...]:
    quoted = line.split(",", 3)[3].strip().strip('"')
    return tuple(label.strip() for label in quoted.split(","))


_LAYOUTS = {1: ("mono", ("FC",)), 2: ("stereo", ("FL", "FR")),
            6: ("5.1", ("FL", "FR", "FC", "LFE", "BL", "BR"))}


def _ffmpeg_command(spec: Spec, path: str, seed: int) -> list[str]:
    """An ffmpeg argument list (never a shell) that writes ``spec`` to ``path``."""
    rate, duration = spec.sample_rate, spec.duration_s
    inputs: list[str] = []
    if spec.expression is not None:
        channel = spec.expression
        inputs.append(f"aevalsrc={'|'.join([channel] * spec.channels)}:s={rate}:d={duration}")
        graph = "[0:a]anull[out]"
    elif not spec.tones_hz:
        inputs.append(f"anullsrc=r={rate}:cl=mono")
        graph = f"[0:a]atrim=duration={duration}[out]" if spec.channels == 1 else ""
    else:
        labels = []
        for index in range(spec.channels):
            tone = spec.tones_hz[index % len(spec.tones_hz)]
            inputs.append(f"sine=frequency={tone}:sample_rate={rate}:duration={duration}")
            inputs.append(f"anoisesrc=color=white:amplitude={NOISE_AMPLITUDE}:sample_rate={rate}:"
                          f"duration={duration}:seed={seed + index}")
            labels.append(f"[c{index}]")
        mixes = [f"[{2 * index}:a][{2 * index + 1}:a]amix=inputs=2:normalize=0,volume=0.5"
                 f"[c{index}]" for index in range(spec.channels)]
        layout = _LAYOUTS[spec.channels]
        # An explicit map: without it ffmpeg may reorder the channels of a 5.1 layout.
        mapping = "|".join(f"{index}.0-{name}" for index, name in enumerate(layout[1]))
        join = (f"{''.join(labels)}join=inputs={spec.channels}:channel_layout={layout[0]}:"
                f"map={mapping}[out]") if spec.channels > 1 else "[c0]anull[out]"
        graph = ";".join([*mixes, join])
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    for source in inputs:
        command += ["-f", "lavfi", "-i", source]
    if graph:
        command += ["-filter_complex", graph, "-map", "[out]"]
    else:
        command += ["-t", str(duration)]
    command += ["-ar", str(rate), "-ac", str(spec.channels), *spec.codec_args, path]
    return command


def _write_corrupt(path: str, seed: int) -> None:
    """Seeded random bytes: nothing ffmpeg can find a stream in."""
    generator = random.Random(seed)
    with open(path, "wb") as corrupt_file:
        corrupt_file.write(bytes(generator.getrandbits(8) for _ in range(48_000)))


def build_corpus(directory: str, csv_dir: str | None = None) -> AudioCorpus:
    """Generates every file of :data:`SPECS` into ``directory`` (2 ffmpeg processes at a time)."""
    os.makedirs(directory, exist_ok=True)
    csv_dir = csv_dir or os.path.dirname(os.path.abspath(directory))
    rows = balanced_rows(len(SPECS))
    segments: dict[str, Segment] = {}
    commands = []
    csv_lines = []
    for index, (spec, (ytid, line)) in enumerate(zip(SPECS, rows)):
        labels = _labels(line)
        end_s = spec.csv_end_s if spec.csv_end_s is not None else 10.0
        if spec.csv_end_s is not None:
            # Edited row (see the module docstring): a user's CSV with a 35 s segment.
            line = f'{ytid}, 0.000, {spec.csv_end_s:.3f}, "{",".join(labels)}"'
        csv_lines.append(line)
        path = None
        if spec.ext is not None:
            path = os.path.join(directory, f"{spec.file_prefix}{ytid}.{spec.ext}")
            if spec.kind == "corrupt":
                _write_corrupt(path, seed=index)
            else:
                commands.append(_ffmpeg_command(spec, path, seed=1000 + 10 * index))
        fetch_failure = FETCH_FAILURES.get(spec.kind)
        failure = PIPELINE_FAILURES.get(spec.kind)
        duration = 0.0 if fetch_failure else min(end_s, spec.duration_s)
        if spec.expression is not None:
            tones = tuple(300.0 + 100.0 * chunk for chunk in range(expected_chunks(duration)))
        else:
            tones = tuple(spec.tones_hz[i % len(spec.tones_hz)]
                          for i in range(spec.channels)) if spec.tones_hz else ()
        segments[ytid] = Segment(
            ytid=ytid, kind=spec.kind, start_s=0.0, end_s=end_s, labels=labels, path=path,
            duration_s=duration, sample_rate=spec.sample_rate, channels=spec.channels,
            tones_hz=tones, chunks=0 if failure else expected_chunks(duration),
            fetch_failure=fetch_failure, failure=failure)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for result in pool.map(lambda cmd: subprocess.run(cmd, capture_output=True, text=True),
                               commands):
            if result.returncode != 0:
                raise RuntimeError(f"ffmpeg failed: {result.args}\n{result.stderr}")

    labels_used = {label for segment in segments.values() for label in segment.labels}
    header = [
        "# Segments csv created by tests/audio_corpus.py from balanced_train_segments.csv",
        f"# num_ytids={len(segments)}, num_segs={len(segments)}, "
        f"num_unique_labels={len(labels_used)}, "
        f"num_positive_labels={sum(len(s.labels) for s in segments.values())}",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]
    csv_text = "\n".join(header + csv_lines) + "\n"
    csv_path = os.path.join(csv_dir, "corpus_segments.csv")
    with open(csv_path, "w", encoding="utf-8") as csv_file:
        csv_file.write(csv_text)
    return AudioCorpus(directory=directory, csv_text=csv_text, csv_path=csv_path,
                       segments=segments)


def mp4_top_level_atoms(path: str) -> list[str]:
    """The top-level box types of an MP4/m4a in file order (to tell where the index sits)."""
    atoms = []
    with open(path, "rb") as mp4:
        size_total = os.fstat(mp4.fileno()).st_size
        offset = 0
        while offset + 8 <= size_total:
            mp4.seek(offset)
            size, kind = struct.unpack(">I4s", mp4.read(8))
            if size == 1:
                size = struct.unpack(">Q", mp4.read(8))[0]
            elif size == 0:
                size = size_total - offset
            atoms.append(kind.decode("latin-1"))
            if size < 8:
                break
            offset += size
    return atoms


if __name__ == "__main__":
    corpus = build_corpus(sys.argv[1])
    print(corpus.csv_text)
    for segment in corpus.segments.values():
        print(segment)
