"""The pieces of benchmarks.pipeline_local that are not timings: the clips it serves to yt-dlp
and the segment list it hands the job, and the start-up arithmetic. (The benchmark itself runs
six jobs of the pipeline: ``make bench``, not the tests.)"""
from __future__ import annotations

from benchmarks.pipeline_local import after_startup, make_clips_on_disk, write_segments_csv
from pipeline.audio_server import AudioServer
from pipeline.segments import YTID_PATTERN, load_vocabulary, parse_segments_csv


def test_clips_have_youtube_ids_and_the_segment_list_parses(tmp_path):
    paths = make_clips_on_disk(tmp_path / "audio", 2)
    assert all(YTID_PATTERN.match(path.stem) for path in paths)
    csv = write_segments_csv(tmp_path / "segments.csv", paths)
    vocabulary = load_vocabulary()
    segments = parse_segments_csv(str(csv), vocabulary)
    assert [(s.ytid, s.start_s, s.end_s) for s in segments] == [(p.stem, 0.0, 10.0) for p in paths]
    assert all(len(s.labels) == 1 for s in segments)
    with AudioServer(str(tmp_path / "audio")) as server:  # what the yt-dlp jobs fetch from
        assert server.find(paths[1].stem) == str(paths[1])


def test_after_startup_subtracts_the_one_clip_job():
    job = {"seconds": 30.0, "cpu_s": 40.0}
    startup = {"seconds": 10.0, "cpu_s": 20.0}
    assert after_startup(job, startup, 101) == {"clips_per_s_after_startup": 5.0,
                                                "cpu_ms_per_clip_after_startup": 200.0}
    assert after_startup({"seconds": 9.0, "cpu_s": 21.0}, startup, 2)["clips_per_s_after_startup"] is None

