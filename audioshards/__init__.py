"""The shard contract: what the Beam job writes and the trainer reads, importable without Beam.

Both halves of MyGO must agree, bit for bit, on how audio becomes an example: the decode and
clipping (:mod:`audioshards.audio`), the log-mel front end (:mod:`audioshards.spectrogram` and its
numba kernels, :mod:`audioshards.stft_kernels`), the TFRecord format, names, manifest and band
statistics (:mod:`audioshards.shards`), the settings machinery that turns frozen dataclasses into
flags and the configuration reference (:mod:`audioshards.flags`), and where files live, local or
remote, and how they are written atomically (:mod:`audioshards.storage`).

Why a package of its own rather than modules inside ``pipeline/`` or ``training/``: the contract
has two readers with different installs. The trainer's image carries no Beam, yt-dlp or deno, and
the Beam workers carry no scikit-learn or matplotlib; a third package that imports neither half
(only NumPy, numba, ffmpeg and TensorFlow's record format) lets each role depend on
the contract and not on the other role, and makes the dependency direction visible in every import
line: ``pipeline -> audioshards <- training``. This is TFDS's split of a format library from the
jobs that use it. Nothing here may import ``pipeline``, ``training`` or ``apache_beam``
(tests/audioshards/test_imports.py checks).
"""
