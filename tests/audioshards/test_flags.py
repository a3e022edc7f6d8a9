"""audioshards.flags: dataclass settings → argparse flags → the same dataclasses, and the reference."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from audioshards import flags
from audioshards.flags import setting


@dataclasses.dataclass(frozen=True)
class Range:
    low: float = setting(0.0, "lowest value")
    pair: tuple[float, float] = setting((1.0, 2.0), "a pair")


@dataclasses.dataclass(frozen=True)
class Toy:
    name: str = setting(help="required: no default", choices=("a", "b"))
    paths: tuple[str, ...] = setting((), "any number of | paths", metavar="PATH")
    count: int | None = setting(None, "derived when unset", metavar="N")
    cores: int = setting(help="machine-dependent", default_factory=lambda: 7, shown="one per core")
    loud: bool = setting(False, "a switch")
    hidden: float = 0.5  # no help: no flag
    first: Range = Range()
    second: Range = Range(low=3.0)


ROWS = flags.flags(Toy, prefixes={"second": "second-"})


def parse(*argv: str) -> Toy:
    parser = argparse.ArgumentParser()
    flags.add_arguments(parser, ROWS)
    return flags.build(Toy, flags.given(parser.parse_args(argv), ROWS))


def test_every_setting_with_help_has_a_flag_and_sections_can_be_prefixed():
    assert [row.flag for row in ROWS] == ["--name", "--paths", "--count", "--cores", "--loud", "--low", "--pair",
                                          "--second-low", "--second-pair"]


def test_flags_build_the_dataclass_and_unset_ones_keep_its_defaults():
    assert parse("--name", "a") == Toy(name="a")
    toy = parse("--name", "b", "--paths", "x", "y", "--count", "3", "--loud", "--pair", "4", "5", "--second-low", "6")
    assert toy == Toy(name="b", paths=("x", "y"), count=3, loud=True, first=Range(pair=(4.0, 5.0)),
                      second=Range(low=6.0))
    assert parse("--name", "a", "--loud", "--no-loud").loud is False


@pytest.mark.parametrize("argv", [[], ["--name", "c"], ["--name", "a", "--hidden", "1"]])
def test_missing_required_bad_choices_and_unknown_flags_are_refused(argv):
    with pytest.raises(SystemExit):
        parse(*argv)


def test_given_holds_only_what_the_command_line_gave():
    parser = argparse.ArgumentParser()
    flags.add_arguments(parser, ROWS)
    assert flags.given(parser.parse_args(["--name", "a", "--second-low", "0"]), ROWS) == {"name": "a", "second.low": 0.0}


def test_defaults_shown_come_from_the_section_instance():
    shown = {row.flag: row.shown_default() for row in ROWS}
    assert shown == {"--name": None, "--paths": None, "--count": None, "--cores": "one per core", "--loud": "off",
                     "--low": "0.0", "--pair": "1.0 2.0", "--second-low": "3.0", "--second-pair": "1.0 2.0"}


def test_reference_is_a_table_per_group_with_flag_default_and_help():
    parser = argparse.ArgumentParser(prog="toy")
    groups = flags.add_arguments(parser, ROWS, {"": "toy"})
    groups[""].add_argument("--level", default="INFO", help="hand-written (default %(default)s)")
    text = flags.reference(parser, ROWS)
    assert "### toy\n\n| flag | default | meaning |\n| --- | --- | --- |\n" in text
    assert "| `--name {a,b}` | required | required: no default |" in text
    assert "| `--paths PATH [PATH ...]` |  | any number of \\| paths |" in text
    assert "| `--cores N` | one per core | machine-dependent |" in text
    assert "| `--second-low X` | `3.0` | lowest value |" in text  # metavars by type: N, X, PATH
    assert "| `--loud`, `--no-loud` | `off` | a switch |" in text
    assert "| `--second-pair LOW HIGH` | `1.0 2.0` | a pair |" in text
    assert "| `--level LEVEL` | `INFO` | hand-written (default INFO) |" in text
    assert "### first settings" in text and "### second settings" in text


def test_the_snake_case_spelling_of_our_flags_is_accepted_and_others_are_left_alone():
    parser = argparse.ArgumentParser()
    flags.add_arguments(parser, ROWS)
    argv = ["--name", "a", "--second_low=4", "--second_low", "5", "--temp_location", "gs://t", "--loud",
            "--", "--second_low"]
    assert flags.accept_snake_case(argv, parser) == [
        "--name", "a", "--second-low=4", "--second-low", "5", "--temp_location", "gs://t", "--loud", "--", "--second_low"]
    assert parse(*flags.accept_snake_case(["--name", "b", "--second_low", "9"], parser)).second.low == 9.0
