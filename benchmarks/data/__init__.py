"""Offline corpora for pretraining and probing, built from Debian and PyPI packages only.

``build_corpora`` is the entry point (``make corpora``); ``packages`` pins what it needs;
``speech`` (espeak-ng), ``music`` (General MIDI through FluidSynth), ``recordings`` (sounds that
Debian packages ship) and ``scenes`` (the pretraining clip recipes) make the audio; ``signals``
holds the waveform helpers they share. Built corpora are not committed: the scripts rebuild them.
"""
