"""A runner defined outside Beam with options of its own, as DaskRunner's module defines its
(``--runner tests.pipeline.custom_runner.CustomRunner``): the flag check must know them."""
from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.direct.direct_runner import DirectRunner


class CustomRunnerOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument("--custom_cluster_address", help="where the custom cluster listens")


class CustomRunner(DirectRunner):
    pass
