"""MyGO data preparation: AudioSet segments to log-mel TFRecord shards with Apache Beam.

Beam itself is imported only by :mod:`pipeline.job`, so the trainer can use the feature and shard
modules without it.
"""
