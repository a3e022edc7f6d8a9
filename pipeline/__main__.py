"""``python -m pipeline``: shard AudioSet segments (or local audio) into log-mel TFRecords.

Options this parser does not know are handed to Apache Beam, so any pipeline option works:
``--runner DataflowRunner --project P --region R --temp_location gs://...``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from pipeline import flags
from pipeline.config import JobConfig
from pipeline.segments import SegmentError
from pipeline.shards import ShardDirectoryMismatch

EPILOG = """\
Any option not listed above is an Apache Beam pipeline option, for example
  --runner DataflowRunner --project P --region R --temp_location gs://B/tmp
  --sdk_container_image IMAGE --num_workers N --machine_type n2-standard-8
(Dataflow's job labels: --label key=value; --labels is this job's class CSV.)
Locally the DirectRunner runs in multi-processing mode with --workers processes.

Examples:
  python -m pipeline --segments pipeline/data/balanced_train_segments.csv --split train \\
      --out shards/audioset --cache shards/cache
  python -m pipeline --segments eval_segments.csv --audio-dir /data/audioset/eval --split eval \\
      --out shards/audioset --cache shards/cache
  python -m pipeline --audio-dir my_recordings/ --split train --out shards/mine --cache shards/cache
"""


#: The flags: every JobConfig setting that has a help text (pipeline.flags).
FLAGS = flags.flags(JobConfig)
GROUPS = {"": "inputs, outputs and running", "fetch": "fetching (yt-dlp)", "clips": "clips"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Shard AudioSet segments or local audio into log-mel TFRecord shards (Apache Beam).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # Abbreviations would swallow Beam's options: Dataflow's --label would become our --labels.
        allow_abbrev=False,
    )
    groups = flags.add_arguments(p, FLAGS, GROUPS)
    groups[""].add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                            help="console messages of this package (others from WARNING up, unless DEBUG)")
    return p


def config_from_args(args: argparse.Namespace) -> JobConfig:
    settings = flags.given(args, FLAGS)
    if "fetch.url_template" not in settings and settings.get("audio_dir"):
        settings["fetch.url_template"] = ""  # local audio only: nothing is downloaded
    return flags.build(JobConfig, settings)


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
