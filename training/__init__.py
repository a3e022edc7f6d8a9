"""MyGO trainer: LeJEPA on log-mel shards (DESIGN §4). Entry point: ``python -m training``."""
