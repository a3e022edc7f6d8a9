"""Segment CSV parsing (official and re-saved variants), labels, IDs and local file matching."""
from pathlib import Path

import pytest

from pipeline.segments import (
    PACKAGED_LABELS,
    SegmentError,
    check_id,
    directory_segments,
    load_vocabulary,
    match_local_files,
    parse_segments_csv,
)

VOCABULARY = load_vocabulary()


def write(tmp_path: Path, text: str, name: str = "segments.csv", newline: str = "\n") -> str:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode())
    return str(path)


def test_vocabulary_is_audioset_527_classes():
    assert len(VOCABULARY.entries) == 527
    assert VOCABULARY.entries[0] == (0, "/m/09x0r", "Speech")
    assert VOCABULARY.index_of["/t/dd00088"] == VOCABULARY.entries[VOCABULARY.index_of["/t/dd00088"]][0]


def test_real_balanced_train_csv_parses_completely():
    segments = parse_segments_csv(str(Path(PACKAGED_LABELS).with_name("balanced_train_segments.csv")), VOCABULARY)
    assert len(segments) == 22_160
    first = segments[0]
    assert (first.ytid, first.start_s, first.end_s) == ("--PJHxphWEs", 30.0, 40.0)
    assert first.labels == tuple(sorted([VOCABULARY.index_of["/m/09x0r"], VOCABULARY.index_of["/t/dd00088"]]))
    assert all(s.labels for s in segments)


OFFICIAL = """# Segments csv created Sun Mar  5 10:54:31 2017
# num_ytids=2, num_segs=2, num_unique_labels=3, num_positive_labels=3
# YTID, start_seconds, end_seconds, positive_labels
--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"
-0RWZT-miFs, 420.000, 430.000, "/m/03v3yw"
"""


@pytest.mark.parametrize(
    "variant",
    ["official", "crlf", "no_header", "plain_header", "unquoted_single", "no_decimals", "triple_quoted", "unquoted_many"],
)
def test_resaved_variants_give_the_same_segments(tmp_path, variant):
    text, newline = OFFICIAL, "\n"
    rows = OFFICIAL.splitlines()[3:]
    if variant == "crlf":
        newline = "\r\n"
    elif variant == "no_header":
        text = "\n".join(rows) + "\n"
    elif variant == "plain_header":
        text = "YTID,start_seconds,end_seconds,positive_labels\n" + "\n".join(rows) + "\n"
    elif variant == "unquoted_single":
        text = text.replace('"/m/03v3yw"', "/m/03v3yw")
    elif variant == "no_decimals":
        text = text.replace("30.000", "30").replace("40.000", "40").replace("420.000", "420").replace("430.000", "430")
    elif variant == "triple_quoted":
        text = text.replace('"/m/09x0r,/t/dd00088"', '"""/m/09x0r,/t/dd00088"""')
    elif variant == "unquoted_many":
        text = text.replace('"/m/09x0r,/t/dd00088"', "/m/09x0r,/t/dd00088")
    segments = parse_segments_csv(write(tmp_path, text, newline=newline), VOCABULARY)
    assert [(s.ytid, s.start_s, s.end_s) for s in segments] == [("--PJHxphWEs", 30.0, 40.0), ("-0RWZT-miFs", 420.0, 430.0)]
    assert segments[0].labels == tuple(sorted((VOCABULARY.index_of["/m/09x0r"], VOCABULARY.index_of["/t/dd00088"])))
    assert segments[1].labels == (VOCABULARY.index_of["/m/03v3yw"],)


@pytest.mark.parametrize(
    "row, message",
    [
        ('--PJHxphWEs, thirty, 40.000, "/m/09x0r"', "start time 'thirty' is not a number"),
        ('--PJHxphWEs, 40.000, 30.000, "/m/09x0r"', "end 30.0 is not after start 40.0"),
        ("--PJHxphWEs, 30.000", "expected YTID, start, end, labels"),
        ('--PJHxphWEs, 30.000, 40.000, "/m/not_a_class"', "unknown label mid '/m/not_a_class'"),
        ('../../etc/pw, 30.000, 40.000, "/m/09x0r"', "invalid YTID '../../etc/pw'"),
        ('short, 30.000, 40.000, "/m/09x0r"', "invalid YTID 'short'"),
    ],
)
def test_bad_row_names_file_and_line(tmp_path, row, message):
    text = OFFICIAL + row + "\n"
    path = write(tmp_path, text)
    with pytest.raises(SegmentError) as error:
        parse_segments_csv(path, VOCABULARY)
    assert f"{path}, line 6: " in str(error.value)
    assert message in str(error.value)


def test_skip_bad_rows_logs_and_keeps_the_rest(tmp_path, caplog):
    path = write(tmp_path, OFFICIAL + "--PJHxphWEs, 30.000\n" + 'abcdefghijk, 0, 10, "/m/09x0r"\n')
    segments = parse_segments_csv(path, VOCABULARY, skip_bad_rows=True)
    assert [s.ytid for s in segments] == ["--PJHxphWEs", "-0RWZT-miFs", "abcdefghijk"]
    assert "line 6" in caplog.text


def test_ids_are_checked_for_path_safety():
    assert check_id("--PJHxphWEs") == "--PJHxphWEs"
    assert check_id("my_recording-1", allow_any_id=True) == "my_recording-1"
    for bad in ("../x", "a/b", "..", ".hidden", "a b", ""):
        with pytest.raises(SegmentError):
            check_id(bad, allow_any_id=True)


def test_local_files_match_by_ytid_in_common_names(tmp_path):
    segments = parse_segments_csv(write(tmp_path, OFFICIAL + 'abcdefghijk, 5, 15, "/m/09x0r"\n'), VOCABULARY)
    audio = tmp_path / "audio"
    (audio / "sub").mkdir(parents=True)
    (audio / "Y--PJHxphWEs.wav").write_bytes(b"x")
    (audio / "sub" / "-0RWZT-miFs_420000_430000.flac").write_bytes(b"x")
    (audio / "-0RWZT-miFs_0.flac").write_bytes(b"x")  # another segment of the same video
    (audio / "notes.txt").write_text("not audio")
    matched, unmatched = match_local_files(segments, str(audio))
    by_id = {s.ytid: s for s in matched}
    assert Path(by_id["--PJHxphWEs"].path).name == "Y--PJHxphWEs.wav" and not by_id["--PJHxphWEs"].precut
    assert Path(by_id["-0RWZT-miFs"].path).name == "-0RWZT-miFs_420000_430000.flac" and by_id["-0RWZT-miFs"].precut
    assert [s.ytid for s in unmatched] == ["abcdefghijk"]


def test_directory_without_csv_gives_one_unlabelled_segment_per_file(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/two.flac", "one.wav", "readme.md"):
        (tmp_path / name).write_bytes(b"x")
    segments = directory_segments(str(tmp_path))
    assert [(s.ytid, s.labels, s.end_s) for s in segments] == [("b/two.flac", (), None), ("one.wav", (), None)]


# ---- hostile CSVs: csv.Error, encodings -------------------------------------------------------

LATER = 'abcdefghijk, 0, 10, "/m/09x0r"\nbcdefghijkl, 0, 10, "/m/09x0r"\n'


@pytest.mark.parametrize("row, message", [
    ('--PJHxphWEs, 30.000, 40.000, "/m/09x0r', "a quote is opened and never closed on this line"),
    ('--PJHxphWEs, 30.000, 40.000, "' + "/m/09x0r," * 20_000 + '"', "line longer than 65536 bytes"),
    ('--PJHxphWEs, 30.000, 40.000, "/m/09x0r\x00"', "a NUL byte in the line"),
    ('--PJHxphWEs, 30.000, 40.000, "/m/09x0r"\udcff', "not UTF-8 text"),
], ids=["unclosed-quote", "field-over-128-KiB", "nul", "not-utf8"])
def test_a_row_csv_cannot_read_names_file_and_line_and_skipping_it_keeps_every_later_row(tmp_path, row, message,
                                                                                        caplog):
    path = tmp_path / "segments.csv"
    path.write_bytes((OFFICIAL + row + "\n" + LATER).encode("utf-8", "surrogateescape"))
    with pytest.raises(SegmentError) as error:
        parse_segments_csv(str(path), VOCABULARY)
    assert str(error.value).startswith(f"{path}, line 6: ") and message in str(error.value)
    segments = parse_segments_csv(str(path), VOCABULARY, skip_bad_rows=True)
    assert [s.ytid for s in segments] == ["--PJHxphWEs", "-0RWZT-miFs", "abcdefghijk", "bcdefghijkl"]
    assert f"skipping {path}, line 6: " in caplog.text and len(caplog.records) == 1


@pytest.mark.parametrize("data, message", [
    (OFFICIAL.encode("utf-16"), "UTF-16 text, not UTF-8"),
    (OFFICIAL.encode("utf-16-le"), "NUL bytes: UTF-16 text without a byte-order mark"),
    (bytes(range(256)) * 64, "NUL bytes: a binary file"),
    (OFFICIAL.encode("latin-1") + "Ça, 0, 10\n".encode("latin-1"), None),
], ids=["utf16-bom", "utf16-no-bom", "binary", "latin1"])
def test_a_file_that_is_not_utf8_text_is_named_even_when_skipping_bad_rows(tmp_path, data, message):
    path = tmp_path / "segments.csv"
    path.write_bytes(data)
    with pytest.raises(SegmentError) as error:
        parse_segments_csv(str(path), VOCABULARY, skip_bad_rows=message is not None)
    if message is None:  # text, but a row is not UTF-8: that row is the bad one
        assert str(error.value).startswith(f"{path}, line 6: not UTF-8 text")
    else:
        assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
