"""docs/configuration.md is what the settings dataclasses and parsers generate today."""
from docs import configuration


def test_committed_reference_is_current():
    committed = configuration.PATH.read_text(encoding="utf-8")
    assert committed == configuration.render(), (
        f"{configuration.PATH} is out of date with the settings; regenerate it with "
        f"`.venv/bin/{configuration.COMMAND}` (from the repository root) and commit it")
