"""MyGO trainer: LeJEPA on log-mel shards. Entry point: ``python -m training``."""
