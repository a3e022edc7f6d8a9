"""Documents generated from the code (``python -m docs.configuration --write``); not installed."""
