"""``make demo`` (``python -m demo``): the whole system end to end on a small generated corpus.

``__main__`` runs it; ``budget`` runs the command lines in child processes and sizes a training run
to a CPU budget (the quality benchmark uses it too). A development tool used from the repository,
not part of the installed distribution.
"""
