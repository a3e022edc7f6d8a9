"""``python -m pipeline``: shard AudioSet segments (or local audio) into log-mel TFRecords.

Options this parser does not know are handed to Apache Beam, so any pipeline option works:
``--runner DataflowRunner --project P --region R --temp_location gs://...``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from pipeline.audio import ClipSettings
from pipeline.config import YOUTUBE_TEMPLATE, JobConfig
from pipeline.fetch import FetchConfig
from pipeline.segments import PACKAGED_LABELS, SegmentError
from pipeline.shards import ShardDirectoryMismatch

EPILOG = """\
Any option not listed above is an Apache Beam pipeline option, for example
  --runner DataflowRunner --project P --region R --temp_location gs://B/tmp
  --sdk_container_image IMAGE --num_workers N --machine_type n2-standard-8
Locally the DirectRunner runs in multi-processing mode with --workers processes.

Examples:
  python -m pipeline --segments pipeline/data/balanced_train_segments.csv --split train \\
      --out shards/audioset --cache shards/cache
  python -m pipeline --segments eval_segments.csv --audio-dir /data/audioset/eval --split eval \\
      --out shards/audioset --cache shards/cache
  python -m pipeline --audio-dir my_recordings/ --split train --out shards/mine --cache shards/cache
"""


def parser() -> argparse.ArgumentParser:
    fetch, clips = FetchConfig(), ClipSettings()
    p = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Shard AudioSet segments or local audio into log-mel TFRecord shards (Apache Beam).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io = p.add_argument_group("inputs and outputs")
    io.add_argument("--segments", nargs="+", default=[], metavar="CSV",
                    help="AudioSet segment CSVs (YTID, start, end, labels); may be gs:// paths")
    io.add_argument("--split", required=True, choices=["train", "eval"], help="split these segments become")
    io.add_argument("--out", required=True, metavar="SHARD_DIR",
                    help="shard directory (shared by both splits; refused if built with other settings)")
    io.add_argument("--cache", required=True, metavar="CACHE_DIR",
                    help="downloaded audio and recorded failures; what makes a re-run cheap")
    io.add_argument("--labels", default=PACKAGED_LABELS, metavar="CSV",
                    help="class_labels_indices.csv (default: the copy shipped with MyGO, 527 classes)")
    io.add_argument("--audio-dir", metavar="DIR",
                    help="local audio: matched to --segments by YTID (Y<ytid>.wav, <ytid>_<start>.flac, "
                         "<ytid>.m4a, ...), or without --segments every audio file becomes unlabelled clips")
    io.add_argument("--url-template", metavar="URL",
                    help=f"where a YTID is fetched from (default {YOUTUBE_TEMPLATE}; with --audio-dir and no "
                         "template, segments without a local file are recorded as missing)")
    io.add_argument("--num-shards", type=int, metavar="N", help="shard count (default: about 200 MB per shard)")
    io.add_argument("--limit", type=int, metavar="N", help="only the first N segments")
    io.add_argument("--skip-bad-rows", action="store_true",
                    help="log and skip CSV rows that cannot be parsed instead of stopping")
    io.add_argument("--allow-any-id", action="store_true",
                    help="accept IDs that are not AudioSet's 11-character YTIDs (still single safe path parts)")

    net = p.add_argument_group("fetching (yt-dlp)")
    net.add_argument("--retry-failed", action="store_true",
                     help="retry segments whose permanent failure is recorded in the cache")
    net.add_argument("--cookies", metavar="FILE", help="cookies.txt for yt-dlp (never logged)")
    net.add_argument("--proxy", metavar="URL", help="proxy URL for yt-dlp (credentials never logged)")
    net.add_argument("--rate-limit", type=int, metavar="BYTES_PER_S", help="download rate limit per worker")
    net.add_argument("--sleep-interval", type=float, default=fetch.sleep_interval, metavar="S",
                     help="seconds to sleep before each download (default %(default)s)")
    net.add_argument("--retries", type=int, default=fetch.retries, metavar="N",
                     help="attempts for transient failures, with exponential back-off (default %(default)s)")
    net.add_argument("--backoff", type=float, default=fetch.backoff_s, metavar="S",
                     help="first back-off in seconds, doubled each attempt (default %(default)s)")

    shaping = p.add_argument_group("clips")
    shaping.add_argument("--min-remainder", type=float, default=clips.min_remainder_s, metavar="S",
                         help="shortest trailing remainder of a long source kept (looped) as a clip (default %(default)s)")
    shaping.add_argument("--short-sources", choices=["loop", "pad"], default=clips.short_sources,
                         help="how sources shorter than 10 s are filled (default %(default)s)")

    run = p.add_argument_group("running")
    run.add_argument("--workers", type=int, default=JobConfig.__dataclass_fields__["workers"].default_factory(),
                     metavar="N", help="local worker processes (default: one per core, %(default)s here)")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def config_from_args(args: argparse.Namespace) -> JobConfig:
    template = args.url_template
    if template is None:
        template = "" if args.audio_dir else YOUTUBE_TEMPLATE
    return JobConfig(
        split=args.split,
        out=args.out,
        cache=args.cache,
        segments=tuple(args.segments),
        labels=args.labels,
        audio_dir=args.audio_dir,
        num_shards=args.num_shards,
        limit=args.limit,
        workers=args.workers,
        skip_bad_rows=args.skip_bad_rows,
        allow_any_id=args.allow_any_id,
        fetch=FetchConfig(
            url_template=template,
            cookies=args.cookies,
            proxy=args.proxy,
            rate_limit=args.rate_limit,
            sleep_interval=args.sleep_interval,
            retries=args.retries,
            backoff_s=args.backoff,
            retry_failed=args.retry_failed,
        ),
        clips=ClipSettings(min_remainder_s=args.min_remainder, short_sources=args.short_sources),
    )


class ConsoleFilter(logging.Filter):
    """Keeps the console readable: this package's messages, and others from WARNING up. The local
    runner's copies of worker messages are dropped: the workers print their own."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("pipeline"):
            return True
        return record.levelno >= logging.WARNING and record.name != "apache_beam.runners.portability.local_job_service"


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if level != "DEBUG":
        handler.addFilter(ConsoleFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any worker imports TensorFlow
    args, beam_args = parser().parse_known_args(argv)
    configure_logging(args.log_level)
    from pipeline.run import run

    try:
        run(config_from_args(args), beam_args, argv=["python", "-m", "pipeline", *argv])
    except (SegmentError, ShardDirectoryMismatch, ValueError) as error:
        logging.getLogger("pipeline").error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
