"""``python -m training <command>``: ``train``, ``probe``, ``export`` and ``viz``.

    python -m training train --shards SHARD_DIR --out RUN_DIR [--model tiny|small|base] [--batch N]
        [--steps N | --epochs N] [--lr LR] [--lambda 0.05] [--global-views 2] [--local-views 6]
        [--precision auto|mixed_bfloat16|mixed_float16|float32] [--checkpoint-every N] [--seed S]
        [--cpu-devices K] [... every setting of training.config, see --help]

Running the same command again with the same --out resumes from the latest checkpoint; the run's
settings come from RUN_DIR/config.json, so `python -m training train --out RUN_DIR` is enough.
`--config FILE` starts from the settings of a JSON file (a saved config.json, or a few sections of
it), with the flags given beside it overriding them.
"""
from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys

from audioshards import flags, storage
from training import config as config_module
from training import console

EXAMPLES = """\
examples:
  python -m training train --shards shards/audioset --out runs/base --model base --batch 256 --epochs 100
  python -m training train --shards shards/audioset --out runs/cpu --model tiny --batch 16 --steps 200 \\
      --global-frames 106 --local-frames 46 --cpu-devices 2
  python -m training train --out runs/base            # resume: settings from runs/base/config.json
  python -m training train --config runs/base/config.json --out runs/base-lr --lr 1e-4   # a variant
"""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_log_level(parser: argparse.ArgumentParser) -> None:
    """The pipeline's --log-level, on every subcommand (users type it after the command)."""
    parser.add_argument("--log-level", default="INFO", choices=LOG_LEVELS,
                        help="console messages of the trainer (others from WARNING up; DEBUG: everything, "
                             "TensorFlow's native start-up lines too)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description="MyGO trainer (LeJEPA on log-mel shards).")
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser("train", help="train (or resume) a run", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    config_module.add_arguments(train)
    train.add_argument("--config", metavar="FILE",
                       help="start from the settings in FILE (JSON in config.json's form, any subset: a saved run's "
                            "config.json or a small file of your own); flags given with it win")
    add_log_level(train)
    from training import probe, viz

    probe_parser = commands.add_parser(
        "probe", help="linear probe of a run's frozen encoder (labelled shards or audio), with baselines")
    probe.add_arguments(probe_parser)
    add_log_level(probe_parser)
    export = commands.add_parser("export", help="SavedModel: raw 48 kHz audio in, embeddings out")
    export.add_argument("--run", required=True, help="training run directory")
    export.add_argument("--out", required=True, help="folder for the SavedModel")
    add_log_level(export)
    viz_parser = commands.add_parser("viz", help="pictures: PCA, [CLS] attention, training curves (PNG)")
    viz.add_arguments(viz_parser)
    add_log_level(viz_parser)
    return p


def setup_logging(run_dir: str | None, level: str = "INFO") -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if run_dir and not storage.is_remote(run_dir):  # a copy of the console in a local RUN_DIR
        os.makedirs(run_dir, exist_ok=True)
        handlers.append(logging.FileHandler(os.path.join(run_dir, "train.log")))
    # Our own messages at --log-level; TensorFlow's Python-side chatter only from WARNING up, unless DEBUG.
    logging.basicConfig(level=logging.DEBUG if level == "DEBUG" else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", handlers=handlers,
                        force=True)
    logging.getLogger("training").setLevel(level)


def resolve_train_config(settings: dict) -> tuple[config_module.Config, bool]:
    """(config, resumed): from RUN_DIR/config.json if it exists, else from the flags."""
    out = settings.get("run.out")
    if not out:
        raise config_module.UsageError("--out RUN_DIR is required")
    import tensorflow as tf  # gfile: RUN_DIR may be gs://...

    saved_path = f"{out.rstrip('/')}/config.json"
    if tf.io.gfile.exists(saved_path):
        saved = config_module.load(saved_path)
        problems = config_module.differences(saved, settings)
        if problems:
            raise config_module.UsageError(f"{out} holds a run started with other settings:\n  " + "\n  ".join(problems)
                             + "\nLeave those options out to resume it, or use another --out for a new run.")
        changes = {k: v for k, v in settings.items() if k in config_module.RESUMABLE}
        if "run.steps" in changes:
            changes["run.epochs"] = None
        elif "run.epochs" in changes:
            changes["run.steps"] = None
        return saved.replace(**changes), True
    if not settings.get("run.shards"):
        raise config_module.UsageError("--shards SHARD_DIR is required for a new run")
    return config_module.config_from_settings(settings), False


def check_run(run: str, needs_encoder: bool = True) -> None:
    """export and viz read RUN_DIR/encoder (viz only when it embeds data; its curves come from the
    run's TensorBoard events alone): a missing run is named before TensorFlow starts, not reported
    as an ``[Errno 2]`` about a file inside it. Remote runs are left to the reader."""
    if storage.is_remote(run):
        return
    if not os.path.isdir(run):
        raise config_module.UsageError(f"--run {run}: no such run directory")
    if needs_encoder and not os.path.isfile(os.path.join(run, "encoder", "encoder.json")):
        raise config_module.UsageError(f"--run {run}: no exported encoder in it (encoder/encoder.json, written by "
                                       "train with each checkpoint); is it a run directory, and has it saved one?")


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The parsed command line. An unknown flag is reported by its subcommand's parser (its usage,
    not the top level's), with the closest flags it has, as a misspelling usually is one of them."""
    top = parser()
    (commands,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in commands.choices:  # --batch_size reads as --batch-size (flags.accept_snake_case)
        argv = [argv[0], *flags.accept_snake_case(argv[1:], commands.choices[argv[0]])]
    args, unknown = top.parse_known_args(argv)
    if unknown:
        command = commands.choices[args.command]
        known = [option for action in command._actions for option in action.option_strings]  # noqa: SLF001
        guesses = list(dict.fromkeys(match for word in unknown if word.startswith("-")
                                     for match in difflib.get_close_matches(word.split("=")[0], known, n=3)))
        hint = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
        command.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    return args


def main(argv: list[str] | None = None) -> int:
    """The command line; ``argv`` None means the process is ours (``python -m training``, ``mygo-train``),
    so TensorFlow's native start-up lines may be filtered from its stderr."""
    args = parse(argv)  # choices are checked here, before TensorFlow is imported
    console.quiet_tensorflow(args.log_level, own_process=argv is None)
    if args.command == "train":
        return train_command(args)
    setup_logging(None, args.log_level)
    try:
        if args.command in ("export", "viz"):
            check_run(args.run, needs_encoder=args.command == "export" or bool(args.shards or args.audio))
        if args.command == "probe":
            from training import probe

            probe.run(args)
        elif args.command == "export":
            from training.saved_model import export_saved_model

            print(export_saved_model(args.run, args.out))
        else:
            from training import viz

            for path in viz.run(args):
                print(path)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def train_command(args: argparse.Namespace) -> int:
    from audioshards.shards import ManifestError, ShardDirectoryMismatch

    settings = config_module.given_settings(args)
    try:
        if args.config:
            settings = config_module.settings_from_file(args.config, settings)
        config, resumed = resolve_train_config(settings)
    except (config_module.UsageError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run_dir = config.run.out
    setup_logging(run_dir, args.log_level)
    log = logging.getLogger("training")

    from training import train as train_module
    from training.data import ShardProblem

    try:
        # Devices first (nothing may touch TensorFlow's devices before --cpu-devices takes effect),
        # then the resolved precision can be written down.
        train_module.configure_devices(config.run.cpu_devices)
        config = config.replace(**{"run.precision": train_module.resolve_precision(config.run.precision)})
        import tensorflow as tf


        tf.io.gfile.makedirs(run_dir)
        storage.write_json_atomic(f"{run_dir.rstrip('/')}/config.json", config.to_dict())
        log.info("%s run in %s with config:\n%s", "resuming" if resumed else "new", run_dir, config.to_json())
        return train_module.train(config)
    except (ShardDirectoryMismatch, ManifestError, ShardProblem, config_module.UsageError) as error:
        log.error("%s", error)  # a damaged manifest.json is named, not a JSONDecodeError traceback
        return 2


if __name__ == "__main__":
    sys.exit(main())
