"""MyGO data preparation: AudioSet segments to log-mel TFRecord shards with Apache Beam.

The feature and shard format it writes is :mod:`audioshards` (shared with the trainer). Beam
itself is imported only by :mod:`pipeline.job` and where the job is launched.
"""
