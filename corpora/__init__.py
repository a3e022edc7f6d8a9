"""Offline corpora for pretraining and probing, built from Debian and PyPI packages only.

``build`` is the entry point (``python -m corpora.build``, ``make corpora``); ``packages`` pins
what it needs; ``speech`` (espeak-ng), ``music`` (General MIDI through FluidSynth),
``recordings`` (sounds that Debian packages ship) and ``scenes`` (the pretraining clip recipes)
make the audio; ``signals`` holds the waveform helpers they share. A development tool used from
the repository (the demo, the tests, the quality benchmark), not part of the installed
distribution. Built corpora are not committed: the scripts rebuild them.
"""
