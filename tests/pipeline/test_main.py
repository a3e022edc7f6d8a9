"""``python -m pipeline``'s command line: its flags fill JobConfig, every other option reaches Beam.

The runner commands of docs/shards.md (Runners) are parsed here as they are written there (no job is run)."""
from __future__ import annotations

import logging

import pytest

from pipeline import __main__ as cli
from audioshards.audio import ClipSettings
from pipeline.config import JobConfig
from pipeline.fetch import FetchConfig
from pipeline.run import SETUP_FILE, beam_options

REQUIRED = ["--split", "train", "--out", "gs://b/shards", "--cache", "gs://b/cache", "--segments", "a.csv"]

DATAFLOW = ["--runner", "DataflowRunner", "--project", "my-project", "--region", "europe-west4",
            "--temp_location", "gs://b/tmp", "--setup_file", "./setup.py",
            "--sdk_container_image", "europe-west4-docker.pkg.dev/p/r/mygo-pipeline:0.1.0",
            "--num_workers", "32", "--max_num_workers", "32", "--machine_type", "n2-standard-4",
            "--label", "dataset=audioset"]
PACED = ["--number_of_worker_harness_threads", "1", "--experiments", "no_use_multiple_sdk_containers",
         "--sleep-interval", "2"]
PORTABLE = ["--runner", "PortableRunner", "--job_endpoint", "localhost:8099", "--environment_type", "DOCKER",
            "--environment_config", "mygo-pipeline:0.1.0"]
FLINK = ["--runner", "FlinkRunner", "--flink_master", "flink-jobmanager:8081", "--flink_version", "1.20",
         "--parallelism", "64",
         "--environment_type", "DOCKER", "--environment_config", "mygo-pipeline:0.1.0"]
SPARK = ["--runner", "SparkRunner", "--spark_master_url", "spark://spark-master:7077",
         "--environment_type", "DOCKER", "--environment_config", "mygo-pipeline:0.1.0"]


def split(*argv: str) -> tuple[JobConfig, list[str]]:
    args, beam_args = cli.parser().parse_known_args(list(argv))
    return cli.config_from_args(args), beam_args


def test_every_flag_reaches_its_setting():
    config, beam_args = split(
        "--segments", "a.csv", "b.csv", "--split", "eval", "--out", "o", "--cache", "c", "--labels", "l.csv",
        "--audio-dir", "d", "--url-template", "http://m/{ytid}", "--num-shards", "3", "--limit", "5", "--workers", "2",
        "--skip-bad-rows", "--allow-any-id", "--retry-failed", "--cookies", "k.txt", "--proxy", "http://p:1",
        "--rate-limit", "1000", "--sleep-interval", "0.5", "--retries", "2", "--backoff", "0.1",
        "--min-remainder", "1", "--short-sources", "pad")
    assert beam_args == []
    assert config == JobConfig(
        split="eval", out="o", cache="c", segments=("a.csv", "b.csv"), labels="l.csv", audio_dir="d", num_shards=3,
        limit=5, workers=2, skip_bad_rows=True, allow_any_id=True,
        fetch=FetchConfig(url_template="http://m/{ytid}", cookies="k.txt", proxy="http://p:1", rate_limit=1000,
                          sleep_interval=0.5, retries=2, backoff_s=0.1, retry_failed=True),
        clips=ClipSettings(min_remainder_s=1.0, short_sources="pad"))


def test_unset_flags_keep_the_dataclass_defaults():
    config, _ = split(*REQUIRED)
    assert config == JobConfig(split="train", out="gs://b/shards", cache="gs://b/cache", segments=("a.csv",))


def test_local_audio_without_a_template_fetches_nothing():
    config, _ = split("--audio-dir", "d", "--split", "train", "--out", "o", "--cache", "c")
    assert config.fetch.url_template == ""
    config, _ = split("--audio-dir", "d", "--segments", "a.csv", "--split", "train", "--out", "o", "--cache", "c",
                      "--url-template", "http://m/{ytid}")
    assert config.fetch.url_template == "http://m/{ytid}"


def test_main_hands_every_unknown_option_to_beam(monkeypatch):
    calls = []
    monkeypatch.setattr("pipeline.run.run", lambda config, beam_args, argv: calls.append((config, beam_args)))
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    assert cli.main([*REQUIRED[:4], *DATAFLOW[:4], *REQUIRED[4:], *DATAFLOW[4:]]) == 0
    (config, beam_args), = calls
    assert beam_args == DATAFLOW and config.out == "gs://b/shards"


def test_our_flags_may_be_spelt_in_snake_case_like_beams_next_to_them(monkeypatch):
    calls = []
    monkeypatch.setattr("pipeline.run.run", lambda config, beam_args, argv: calls.append((config, beam_args)))
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    assert cli.main([*REQUIRED, "--num_shards", "3", "--max_seconds=90", *DATAFLOW]) == 0
    (config, beam_args), = calls
    assert (config.num_shards, config.clips.max_seconds) == (3, 90.0) and beam_args == DATAFLOW


def test_missing_cookie_file_stops_the_launch_with_exit_code_2(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    missing = str(tmp_path / "cookies.txt")
    assert cli.main([*REQUIRED, "--cookies", missing]) == 2  # before the CSV a.csv is even looked for
    assert f"--cookies {missing}: no such file" in caplog.text


@pytest.mark.parametrize("runner_args, expected", [
    (DATAFLOW, {"runner": "DataflowRunner", "project": "my-project", "region": "europe-west4",
                "temp_location": "gs://b/tmp", "setup_file": "./setup.py", "num_workers": 32, "max_num_workers": 32,
                "sdk_container_image": "europe-west4-docker.pkg.dev/p/r/mygo-pipeline:0.1.0",
                "machine_type": "n2-standard-4", "labels": ["dataset=audioset"]}),
    (DATAFLOW + PACED, {"number_of_worker_harness_threads": 1, "experiments": ["no_use_multiple_sdk_containers"]}),
    (PORTABLE, {"runner": "PortableRunner", "job_endpoint": "localhost:8099", "environment_type": "DOCKER",
                "environment_config": "mygo-pipeline:0.1.0", "setup_file": str(SETUP_FILE)}),
    (FLINK, {"runner": "FlinkRunner", "flink_master": "flink-jobmanager:8081", "flink_version": "1.20", "parallelism": 64,
             "environment_config": "mygo-pipeline:0.1.0"}),
    (SPARK, {"runner": "SparkRunner", "spark_master_url": "spark://spark-master:7077",
             "environment_config": "mygo-pipeline:0.1.0"}),
    ([], {"runner": "DirectRunner", "direct_running_mode": "multi_processing", "direct_num_workers": 2}),
], ids=["dataflow", "dataflow-paced", "portable", "flink", "spark", "local"])
def test_readme_runner_options_are_all_understood_by_beam(runner_args, expected, caplog):
    config, beam_args = split(*REQUIRED, "--workers", "2", *runner_args)
    assert config.labels == JobConfig.__dataclass_fields__["labels"].default  # Beam's --label stays Beam's
    with caplog.at_level(logging.WARNING):
        options = beam_options(config, beam_args).get_all_options()
    assert "Discarding unparseable args" not in caplog.text  # what Beam says of an option it does not know
    assert {key: options[key] for key in expected} == expected


def test_remote_workers_get_the_pipeline_role_as_requirements():
    # --setup_file installs the project without extras: yt-dlp and its solver come as requirements.
    config, beam_args = split(*REQUIRED, *PORTABLE)
    options = beam_options(config, beam_args).get_all_options()
    with open(options["requirements_file"]) as handle:
        requirements = handle.read().split()
    assert options["requirements_cache"] == "skip"
    assert any(line.startswith("yt-dlp>=") for line in requirements) and "deno==2.9.8" in requirements
    assert not any(line.startswith(("scikit-learn", "matplotlib")) for line in requirements)
    local_config, local_args = split(*REQUIRED)
    assert beam_options(local_config, local_args).get_all_options().get("requirements_file") is None


def test_workers_of_the_pipeline_image_install_nothing_more():
    image = ["--runner", "DataflowRunner", "--project", "p", "--region", "r", "--temp_location", "gs://b/tmp",
             "--sdk_container_image", "europe-west4-docker.pkg.dev/p/r/mygo-pipeline:0.1.0"]
    config, beam_args = split(*REQUIRED, *image)
    options = beam_options(config, beam_args).get_all_options()
    assert options.get("setup_file") is None and options.get("requirements_file") is None
    without_image = beam_options(*split(*REQUIRED, *image[:-2])).get_all_options()
    assert without_image["setup_file"] == str(SETUP_FILE) and without_image["requirements_file"]


@pytest.mark.parametrize("argv, suggestion", [
    (["--sleep-intervall", "5"], "--sleep-interval"),
    (["--prox", "http://user:hunter2@127.0.0.1:9"], "--proxy"),
    (["--prox=http://user:hunter2@127.0.0.1:9"], "--proxy"),
    (["--runner", "DirectRunner", "--num_workerz", "3"], "--num_workers"),
    (["--direct-num-workers", "2"], "--direct_num_workers"),
], ids=["our-flag", "proxy", "proxy-equals", "beam-flag", "dashes-for-underscores"])
def test_an_option_nobody_knows_is_refused_before_anything_starts(argv, suggestion, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr("pipeline.run.run", lambda config, beam_args, argv: calls.append(beam_args))
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    with pytest.raises(SystemExit) as exit_:
        cli.main([*REQUIRED, *argv])
    assert exit_.value.code == 2 and calls == []
    stderr = capsys.readouterr().err
    unknown = argv[-2].split("=")[0] if argv[-1][0] != "-" and len(argv) > 1 else argv[-1].split("=")[0]
    assert f"unknown option {unknown} (did you mean {suggestion}?)" in stderr
    assert "hunter2" not in stderr


def test_a_beam_option_with_a_bad_value_is_refused_before_anything_starts(monkeypatch, capsys):
    monkeypatch.setattr("pipeline.run.run", lambda config, beam_args, argv: pytest.fail("the job started"))
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    with pytest.raises(SystemExit) as exit_:
        cli.main([*REQUIRED, "--num_workers", "many"])
    assert exit_.value.code == 2
    assert "--num_workers: invalid int value: 'many'" in capsys.readouterr().err


def test_a_utf16_segment_csv_is_named_and_stops_the_launch_with_exit_code_2(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    csv = tmp_path / "segments.csv"
    csv.write_text('--PJHxphWEs, 30.000, 40.000, "/m/09x0r"\n', encoding="utf-16")  # as some editors save it
    out = tmp_path / "out"
    assert cli.main(["--segments", str(csv), "--split", "train", "--out", str(out), "--cache", str(tmp_path / "c"),
                     "--skip-bad-rows"]) == 2
    assert f"{csv}: UTF-16 text, not UTF-8: save it as UTF-8" in caplog.text
    assert not out.exists()  # refused before any work


def test_options_defined_by_the_runners_own_module_are_known(monkeypatch):
    calls = []
    monkeypatch.setattr("pipeline.run.run", lambda config, beam_args, argv: calls.append(beam_args))
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    runner = ["--runner", "tests.pipeline.custom_runner.CustomRunner", "--custom_cluster_address", "10.0.0.1:8786"]
    assert cli.main([*REQUIRED, *runner]) == 0
    assert calls == [runner]
