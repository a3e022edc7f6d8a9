"""Build the offline corpora: a pretraining set in AudioSet's format and two labelled tasks.

    python -m corpora.build --out corpora/built --size full --what all
    make corpora [CORPUS_SIZE=small] [CORPORA_DIR=corpora/built] [CORPUS_SEED=0]

Everything comes from Debian and PyPI packages (``corpora/packages.py``) and the seed;
the same seed and package versions give byte-identical files. Each corpus is written to a
temporary folder and renamed when complete, with a ``manifest.json`` (package versions, command,
sha256 of every file, counts per label). Layouts under ``--out``:

``pretrain/``
    ``audio/<YTID>.flac`` (10 s, 48 kHz, mono or stereo), ``segments.csv`` in AudioSet's format
    (three ``#`` lines, then ``YTID, 0.000, 10.000, "mid,mid"``), ``clips.jsonl`` (what made
    each clip). Serve ``audio/`` with ``python -m pipeline.audio_server DIR --port P`` and run the
    pipeline with ``--segments segments.csv --url-template http://127.0.0.1:P/{ytid}``.
``keywords/``
    ``audio/<word>/<speaker>.flac`` (1 s), ``labels.csv`` (``path,label,fold``: paths relative
    to the CSV), ``speakers.csv``. Folds are speaker-disjoint *and* voice-disjoint (a voice
    variant never appears in two folds): cross-validating by fold always tests on held-out
    speakers.
``instruments/``
    ``audio/<family>/<soundfont>_p<program>_<phrase>.flac`` (4 s), ``labels.csv``
    (``path,label,fold``), ``clips.csv``. Fold 1 is rendered with FluidR3_GM (train), fold 2 with
    TimGM6mb (test), from the same notes: train on fold 1, test on fold 2.

Sizes and times on 2 cores (``--size full``): pretrain 3,000 clips, 1.9 GB, about 5 minutes;
keywords 100 speakers x 20 words = 2,000 clips, 77 MB, under a minute; instruments 128 programs
x 8 phrases x 2 SoundFonts = 2,048 clips, 425 MB, 1 to 2.5 minutes. ``--size small`` builds all
three (24 + 60 + 32 clips) in about 10 seconds; the tests use it.
"""
from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import json
import logging
import multiprocessing
import os
import platform
import shutil
import sys
import time
from typing import Any, Callable, Iterable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from corpora import packages, signals  # noqa: E402

log = logging.getLogger("corpora")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASS_LABELS = os.path.join(REPO, "pipeline", "data", "class_labels_indices.csv")
FORMAT_VERSION = 1
CORPORA = ("pretrain", "keywords", "instruments")

#: Per corpus and size: pretrain clips; keyword speakers (x 20 words); instrument phrases per
#: program (small: one program per family).
SIZES = {
    "pretrain": {"small": 24, "demo": 320, "full": 3000},
    "keywords": {"small": 3, "demo": 10, "full": 100},
    "instruments": {"small": 1, "demo": 1, "full": 8},
}
PRETRAIN_SECONDS = 10.0
KEYWORD_SECONDS = 1.0
INSTRUMENT_SECONDS = 4.0
KEYWORD_FOLDS = 5
INSTRUMENT_FOLDS = {"FluidR3_GM": 1, "TimGM6mb": 2}
#: Peak below which a rendered instrument clip counts as silent (the pipeline refuses 1e-5).
SILENCE_PEAK = 1e-4


# ------------------------------------------------------------------------------------------
# Pretraining corpus
# ------------------------------------------------------------------------------------------


def pretrain_jobs(seed: int, count: int) -> list[dict]:
    from corpora import scenes

    jobs, seen = [], set()
    for index, recipe in enumerate(scenes.schedule(count, seed)):
        ytid = signals.ytid(seed, "pretrain", index)
        while ytid in seen:  # never in practice (66 bits), but an id must be unique
            ytid = signals.ytid(seed, "pretrain", index, ytid)
        seen.add(ytid)
        jobs.append({"index": index, "recipe": recipe, "ytid": ytid, "seed": seed,
                     "path": f"audio/{ytid}.flac"})
    return jobs


def make_pretrain_clip(job: dict, folder: str) -> dict:
    from corpora import scenes

    clip = scenes.make(job["recipe"], job["seed"], job["index"], PRETRAIN_SECONDS)
    path = os.path.join(folder, job["path"])
    signals.write_flac(path, clip.audio)
    return {**job, "labels": clip.labels, "details": clip.details, "channels": clip.audio.shape[1],
            "sha256": signals.sha256_file(path)}


def write_pretrain_tables(folder: str, results: list[dict], names: dict[str, str], header: str) -> None:
    labels = [mid for result in results for mid in result["labels"]]
    with open(os.path.join(folder, "segments.csv"), "w", newline="") as handle:
        handle.write(f"# Segments csv created by corpora/build.py ({header})\n")
        handle.write(f"# num_ytids={len(results)}, num_segs={len(results)}, "
                     f"num_unique_labels={len(set(labels))}, num_positive_labels={len(labels)}\n")
        handle.write("# YTID, start_seconds, end_seconds, positive_labels\n")
        for result in results:
            handle.write(f'{result["ytid"]}, 0.000, {PRETRAIN_SECONDS:.3f}, "{",".join(result["labels"])}"\n')
    with open(os.path.join(folder, "clips.jsonl"), "w") as handle:
        for result in results:
            record = {key: result[key] for key in ("ytid", "path", "recipe", "labels", "details")}
            record["label_names"] = [names[mid] for mid in result["labels"]]
            handle.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")


# ------------------------------------------------------------------------------------------
# Keywords
# ------------------------------------------------------------------------------------------


def keyword_speakers(seed: int, count: int) -> list[dict]:
    """``count`` distinct (language, variant) speakers, female and male in turn. A variant's
    fold is fixed when it is first used, so folds are disjoint in voices as well as speakers."""
    from corpora import speech

    rand = signals.rng(seed, "keywords", "speakers")
    by_sex = {}
    for sex in ("F", "M"):
        by_sex[sex] = [name for name, s in speech.variants() if s == sex and name not in speech.WHISPER_VARIANTS]
        rand.shuffle(by_sex[sex])
    folds = min(KEYWORD_FOLDS, count)
    speakers, taken, fold_of = [], set(), {}
    for i in range(count):
        sex = "FM"[i % 2]
        variant = by_sex[sex][(i // 2) % len(by_sex[sex])]
        fold_of.setdefault(variant, 1 + len(fold_of) % folds)
        language = rand.choice([lang for lang in speech.KEYWORD_LANGUAGES if (lang, variant) not in taken])
        taken.add((language, variant))
        speakers.append({"speaker": f"{language}+{variant}", "language": language, "variant": variant,
                         "sex": sex, "fold": fold_of[variant]})
    return speakers


def keyword_jobs(seed: int, count: int) -> list[dict]:
    from corpora import speech

    jobs = []
    for speaker in keyword_speakers(seed, count):
        for word in speech.KEYWORDS:
            name = speaker["speaker"].replace("+", "_")
            jobs.append({**speaker, "seed": seed, "word": word, "path": f"audio/{word}/{name}.flac"})
    return jobs


def make_keyword_clip(job: dict, folder: str) -> dict:
    import numpy as np

    from corpora import speech

    rand = signals.rng(job["seed"], "keywords", job["speaker"], job["word"])
    speed, pitch = rand.randint(110, 240), rand.randint(15, 85)
    length = signals.seconds(KEYWORD_SECONDS)
    for _ in range(4):  # a slow voice may need more than the clip: say it faster
        word = speech.trim(speech.synthesize(job["word"], job["language"], job["variant"], speed=speed, pitch=pitch))
        if len(word) <= length - signals.seconds(0.05):
            break
        speed += 50
    word = signals.fade(word[: length - signals.seconds(0.05)])
    track = np.zeros((length, 1), np.float32)
    signals.place(track, signals.gain_to(word, -20), rand.randrange(length - len(word) + 1))
    noise = signals.colored_noise(length, rand.choice((0.0, 1.0, 2.0)), signals.np_rng("floor", rand.random()), 1)
    track += noise * np.float32(10 ** (rand.uniform(-70, -45) / 20))
    path = os.path.join(folder, job["path"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    signals.write_flac(path, signals.finish(track, rand.uniform(-30, -18)))
    return {**job, "speed": speed, "pitch": pitch, "label": job["word"], "sha256": signals.sha256_file(path)}


def write_task_tables(folder: str, results: list[dict], extra_name: str, extra_columns: list[str]) -> None:
    with open(os.path.join(folder, "labels.csv"), "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "label", "fold"])
        writer.writerows([result["path"], result["label"], result["fold"]] for result in results)
    with open(os.path.join(folder, extra_name), "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", *extra_columns])
        writer.writerows([result["path"], *(result[c] for c in extra_columns)] for result in results)


# ------------------------------------------------------------------------------------------
# Instruments
# ------------------------------------------------------------------------------------------


def instrument_jobs(seed: int, phrases: int, small: bool) -> list[dict]:
    from corpora import music

    if small:
        rand = signals.rng(seed, "instruments", "programs")
        programs = [8 * family + rand.randrange(8) for family in range(16)]
    else:
        programs = list(range(128))
    jobs = []
    for program in programs:
        for phrase in range(phrases):
            for soundfont, fold in INSTRUMENT_FOLDS.items():
                label = music.family(program)
                jobs.append({"seed": seed, "program": program, "phrase": phrase, "soundfont": soundfont,
                             "fold": fold, "label": label,
                             "path": f"audio/{label}/{soundfont}_p{program:03d}_{phrase}.flac"})
    return jobs


def make_instrument_clip(job: dict, folder: str) -> dict:
    import dataclasses

    import numpy as np

    from corpora import music

    # The notes depend on program and phrase only, so both soundfonts play the same phrase.
    rand = signals.rng(job["seed"], "instruments", job["program"], job["phrase"])
    parts = [dataclasses.replace(part, soundfont=job["soundfont"])
             for part in music.solo(rand, job["program"], INSTRUMENT_SECONDS - 0.3)]
    audio = signals.fade(music.render(parts, INSTRUMENT_SECONDS), 0.05)
    if float(np.max(np.abs(audio), initial=0.0)) < SILENCE_PEAK:
        # A SoundFont without samples for these keys renders nothing (TimGM6mb, program 78, one
        # phrase in the full set): no file, recorded in the manifest, instead of a silent clip.
        return {**job, "silent": True}
    path = os.path.join(folder, job["path"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    signals.write_flac(path, signals.finish(audio, rand.uniform(-28, -18)))
    return {**job, "family": job["label"], "sha256": signals.sha256_file(path)}


# ------------------------------------------------------------------------------------------
# Running, manifest
# ------------------------------------------------------------------------------------------


def _run_job(arguments: tuple[Callable, dict, str]) -> dict:
    function, job, folder = arguments
    return function(job, folder)


def warm_up(corpus: str) -> None:
    """Import and load in this process what every worker needs, before the workers fork from
    it (scipy.signal alone takes over a second to import). Not libfluidsynth: a child forked
    after it loaded a SoundFont deadlocks on its next load."""
    import faker  # noqa: F401
    import scipy.signal  # noqa: F401
    import soundfile  # noqa: F401

    from corpora import recordings

    if corpus == "pretrain":
        recordings.opensfx()


def run_jobs(function: Callable, jobs: list[dict], folder: str, workers: int, what: str) -> list[dict]:
    """Results in job order; ``workers`` processes (1: in this process)."""
    os.makedirs(os.path.join(folder, "audio"), exist_ok=True)
    warm_up(what)
    arguments = [(function, job, folder) for job in jobs]
    results, started = [], time.monotonic()
    if workers <= 1:
        iterator: Iterable[dict] = map(_run_job, arguments)
        pool = None
    else:
        pool = multiprocessing.get_context("fork").Pool(workers)
        iterator = pool.imap(_run_job, arguments, chunksize=1 if len(jobs) < 200 else 4)
    try:
        for done, result in enumerate(iterator, 1):
            results.append(result)
            if done % 200 == 0 or done == len(jobs):
                log.info("%s: %d/%d files, %.0f s", what, done, len(jobs), time.monotonic() - started)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return results


def load_label_names(path: str = CLASS_LABELS) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["mid"]: row["display_name"] for row in csv.DictReader(handle)}


def files_digest(files: dict[str, str]) -> str:
    """sha256 over the sorted ``<sha256>  <path>`` lines (``sha256sum``'s format)."""
    lines = "".join(f"{digest}  {path}\n" for path, digest in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def write_manifest(folder: str, corpus: str, args: argparse.Namespace, known: dict[str, str],
                   extra: dict[str, Any], seconds: float) -> dict:
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            relative = os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
            if relative != "manifest.json":
                files[relative] = known.get(relative) or signals.sha256_file(os.path.join(folder, relative))
    manifest = {
        "format_version": FORMAT_VERSION,
        "corpus": corpus,
        "size": args.size,
        "seed": args.seed,
        "command": " ".join(["python", "-m", "corpora.build", *args.argv]),
        "packages": {"debian": packages.debian_versions(), "pypi": packages.pypi_versions(),
                     "python": platform.python_version()},
        **extra,
        "build_seconds": round(seconds, 1),
        "files_digest": files_digest(files),
        "files": dict(sorted(files.items())),
    }
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    return manifest


def build(corpus: str, args: argparse.Namespace) -> dict:
    """Build one corpus into ``args.out/corpus`` (atomically replacing an older one)."""
    started = time.monotonic()
    final = os.path.join(args.out, corpus)
    partial = os.path.join(args.out, f".{corpus}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    names = load_label_names()
    size = SIZES[corpus][args.size]
    try:
        if corpus == "pretrain":
            results = run_jobs(make_pretrain_clip, pretrain_jobs(args.seed, size), partial, args.workers, corpus)
            unknown = {mid for r in results for mid in r["labels"]} - set(names)
            if unknown:
                raise RuntimeError(f"labels not in {CLASS_LABELS}: {sorted(unknown)}")
            write_pretrain_tables(partial, results, names, f"seed {args.seed}, size {args.size}")
            counts = collections.Counter(mid for r in results for mid in r["labels"])
            extra = {
                "clip_seconds": PRETRAIN_SECONDS, "sample_rate": signals.SAMPLE_RATE,
                "segments_csv": "segments.csv", "audio_dir": "audio",
                "clips": len(results),
                "recipes": dict(sorted(collections.Counter(r["recipe"] for r in results).items())),
                "label_counts": {mid: {"name": names[mid], "count": n} for mid, n in counts.most_common()},
            }
        elif corpus == "keywords":
            results = run_jobs(make_keyword_clip, keyword_jobs(args.seed, size), partial, args.workers, corpus)
            write_task_tables(partial, results, "speakers.csv",
                              ["speaker", "language", "variant", "sex", "speed", "pitch", "fold"])
            folds = collections.defaultdict(set)
            for r in results:
                folds[r["fold"]].add(r["speaker"])
            extra = {
                "clip_seconds": KEYWORD_SECONDS, "sample_rate": signals.SAMPLE_RATE,
                "labels_csv": "labels.csv", "clips": len(results),
                "split": "folds are disjoint in speakers and in voice variants: cross-validate by fold, "
                         "each fold's speakers are held out from the training folds",
                "folds": {str(f): sorted(s) for f, s in sorted(folds.items())},
                "label_counts": dict(sorted(collections.Counter(r["label"] for r in results).items())),
            }
        else:
            rendered = run_jobs(make_instrument_clip, instrument_jobs(args.seed, size, args.size == "small"),
                                partial, args.workers, corpus)
            results = [r for r in rendered if not r.get("silent")]
            write_task_tables(partial, results, "clips.csv", ["family", "program", "phrase", "soundfont", "fold"])
            from corpora import music

            extra = {
                "clip_seconds": INSTRUMENT_SECONDS, "sample_rate": signals.SAMPLE_RATE,
                "labels_csv": "labels.csv", "clips": len(results),
                "split": "fold 1 is rendered with FluidR3_GM (train), fold 2 with TimGM6mb (test), "
                         "the same notes in both",
                "folds": {str(fold): {"soundfont": name, "file": music.SOUNDFONTS[name][0],
                                      "package": music.SOUNDFONTS[name][1],
                                      "sha256": signals.sha256_file(music.SOUNDFONTS[name][0])}
                          for name, fold in INSTRUMENT_FOLDS.items()},
                "label_counts": dict(sorted(collections.Counter(r["label"] for r in results).items())),
                "silent_renders_dropped": sorted(r["path"] for r in rendered if r.get("silent")),
            }
        known = {r["path"]: r["sha256"] for r in results}
        manifest = write_manifest(partial, corpus, args, known, extra, time.monotonic() - started)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info("%s: %d files in %s, %.1f s", corpus, len(manifest["files"]), final, manifest["build_seconds"])
    return manifest


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("corpora", "built"),
                        help="folder for the corpora (one subfolder each); default %(default)s")
    parser.add_argument("--size", choices=("small", "demo", "full"), default="full",
                        help="small: a few dozen files each, seconds to build (tests); demo: a few hundred "
                             "(make demo, about a minute); full: the real sets")
    parser.add_argument("--what", choices=(*CORPORA, "all"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes (default: min(2, cores))")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    try:
        for warning in packages.check_installed():
            log.warning("%s", warning)
        from corpora import recordings

        recordings.check_sources()
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    summary = {}
    for corpus in CORPORA if args.what == "all" else (args.what,):
        manifest = build(corpus, args)
        summary[corpus] = {"files": len(manifest["files"]), "seconds": manifest["build_seconds"],
                           "files_digest": manifest["files_digest"]}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
