"""``python -m pipeline``: shard AudioSet segments (or local audio) into log-mel TFRecords.

Options this parser does not know are handed to Apache Beam, so any pipeline option works:
``--runner DataflowRunner --project P --region R --temp_location gs://...``. An option neither
knows is refused before anything starts (Beam itself would only log "Discarding unparseable
args" and run on: a misspelt ``--sleep-interval`` would then download at full speed).
"""
from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys

from audioshards import flags
from pipeline.config import JobConfig, runner_name, with_runner_aliases
from pipeline.segments import SegmentError
from audioshards.shards import ShardDirectoryMismatch

EPILOG = """\
Any option not listed above is an Apache Beam pipeline option, for example
  --runner DataflowRunner --project P --region R --temp_location gs://B/tmp
  --sdk_container_image IMAGE --num_workers N --machine_type n2-standard-8
  --runner DaskRunner --dask_client_address tcp://HOST:8786   (a running Dask cluster)
(Dataflow's job labels: --label key=value; --labels is this job's class CSV.)
An option that neither this job nor Beam knows is refused before anything starts.
Locally the DirectRunner runs in multi-processing mode with --workers processes.

Examples:
  python -m pipeline --segments pipeline/data/balanced_train_segments.csv --split train \\
      --out shards/audioset --cache shards/cache
  python -m pipeline --segments eval_segments.csv --audio-dir /data/audioset/eval --split eval \\
      --out shards/audioset --cache shards/cache
  python -m pipeline --audio-dir my_recordings/ --split train --out shards/mine --cache shards/cache
"""


#: The flags: every JobConfig setting that has a help text (audioshards.flags).
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


def import_runner_module(runner: str | None) -> None:
    """Imports the module of ``runner`` (a name Beam maps to a class, or a dotted class path), so
    the options it defines (the DaskRunner's ``--dask_client_address``, a custom runner's) are
    known: Beam itself imports it before it reads them. A module that cannot be imported adds
    nothing; Beam then fails on the runner itself."""
    if not runner:
        return
    import importlib

    try:
        from apache_beam.runners.runner import _RUNNER_MAP  # noqa: PLC2701 (create_runner's own table)
    except ImportError:
        _RUNNER_MAP = {}
    runner = runner_name(runner)  # DaskRunner: ours, Beam 2.77 has no short name for it
    qualified = _RUNNER_MAP.get(runner.lower(), _RUNNER_MAP.get(runner.lower() + "runner", runner))
    if "." in qualified:
        try:
            importlib.import_module(qualified.rsplit(".", 1)[0])
        except Exception as error:  # noqa: BLE001 (any import failure: Beam reports it later)
            logging.getLogger("pipeline").debug("runner module of %s not imported: %s", runner, error)


def beam_option_parser(runner: str | None = None) -> argparse.ArgumentParser:
    """A parser of every option Beam's PipelineOptions know, built the way Beam builds its own
    (``PipelineOptions.get_all_options``: each direct subclass adds its arguments), so what it
    accepts is exactly what Beam would parse. Its errors raise instead of exiting."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    import_runner_module(runner)

    class Checker(_BeamArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise ValueError(f"Apache Beam option: {message}")

    beam = Checker(allow_abbrev=False, add_help=False)
    classes: dict[str, type] = {}
    for cls in PipelineOptions.__subclasses__():
        classes.setdefault(str(cls), cls)
    for cls in classes.values():
        cls._add_argparse_args(beam)  # noqa: SLF001 (what Beam itself calls)
    return beam


def unknown_arguments(ours: argparse.ArgumentParser, beam_args: list[str]) -> list[str]:
    """Messages for the arguments neither this job nor Beam knows, each with a "did you mean"
    suggestion from both sets of options; empty when all are known. Values are never echoed
    (a misspelt --proxy may carry a password)."""
    runner_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    runner_parser.add_argument("--runner")
    beam = beam_option_parser(runner_parser.parse_known_args(beam_args)[0].runner)
    _, unknown = beam.parse_known_args(beam_args)
    known = sorted({*ours._option_string_actions, *beam._option_string_actions} - {"-h", "--help"})
    problems = []
    for argument in unknown:
        if not argument.startswith("-"):
            if not problems:  # a value that follows a known option, or a stray word
                problems.append("unexpected argument (not an option) in the command line")
            continue
        name = argument.split("=", 1)[0]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if not close and "_" in name:
            close = difflib.get_close_matches(name.replace("_", "-"), known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"unknown option {name}{hint}: neither this job nor Apache Beam knows it")
    return problems


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
    ours = parser()
    args, beam_args = ours.parse_known_args(flags.accept_snake_case(argv, ours))
    beam_args = with_runner_aliases(beam_args)
    configure_logging(args.log_level)
    try:
        problems = unknown_arguments(ours, beam_args)
    except ValueError as error:  # a Beam option with a value Beam cannot take
        problems = [str(error)]
    if problems:
        ours.error("; ".join(problems))  # exit code 2, before any work
    from pipeline.run import run

    try:
        run(config_from_args(args), beam_args, argv=["python", "-m", "pipeline", *argv])
    except (SegmentError, ShardDirectoryMismatch, ValueError) as error:
        logging.getLogger("pipeline").error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
