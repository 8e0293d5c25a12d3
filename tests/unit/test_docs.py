"""The README stays a front door and the site's generated references stay complete: checked
on the generator's own functions, without a site build (`make test` runs the strict build)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def gen_ref() -> ModuleType:
    """docs/gen_ref.py, loaded by path with its folder on sys.path, as mkdocs loads a hook."""
    spec = importlib.util.spec_from_file_location("gen_ref", DOCS / "gen_ref.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(DOCS))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(DOCS))
    return module


def _readme_code() -> str:
    return "\n".join(re.findall(r"```(?:bash)?\n(.*?)```", README.read_text(), flags=re.S))


def test_readme_is_short_and_keeps_the_two_commands() -> None:
    text = README.read_text()
    assert text.count("\n") <= 200, f"README.md has {text.count(chr(10))} lines (at most 200)"
    assert "make demo" in text
    assert "make test" in text


def test_readme_docs_links_name_pages_that_exist() -> None:
    # The README is read on GitHub too, where only files in docs/ exist (no generated pages).
    links = re.findall(r"\]\((docs/[^)#]+)", README.read_text())
    assert links
    assert [link for link in links if not (ROOT / link).is_file()] == []


def test_readme_commands_name_real_make_targets_and_mlops_commands(gen_ref: ModuleType) -> None:
    code = _readme_code()
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    used_targets = set(re.findall(r"\bmake ([a-z][a-z-]*)", code))
    assert used_targets <= targets, used_targets - targets
    commands = {name.split()[1] for name, _, _ in gen_ref.cli_commands()}
    used_commands = set(re.findall(r"\bmlops ([a-z][a-z-]*)", code))
    assert used_commands <= commands, used_commands - commands


def test_settings_reference_lists_every_settings_field(gen_ref: ModuleType) -> None:
    cls = gen_ref.settings_class()
    page = gen_ref.settings_reference()
    rows = gen_ref.settings_rows()
    assert len(rows) == len(cls.model_fields)
    for name, field in cls.model_fields.items():
        env = gen_ref.settings_ref.env_name(name, field)
        assert f"| `{env}` |" in page, f"{name} ({env}) missing from the settings reference"


def test_settings_reference_reads_meanings_from_the_code(gen_ref: ModuleType) -> None:
    meanings = {env: meaning for env, _, _, meaning in gen_ref.settings_rows()}
    # A field's own comment, a group comment split per field, and an overridden property's
    # docstring, as the class has them today.
    assert "journal" in meanings["MLOPS_LOG_QUEUE"]
    assert meanings["MLOPS_DASK_ADDRESS"].startswith("Distributed search: the Dask scheduler")
    assert "sqlite under MLOPS_HOME" in meanings["MLFLOW_TRACKING_URI"]


def test_cli_reference_names_every_mlops_command(gen_ref: ModuleType) -> None:
    page = gen_ref.cli_reference()
    commands = [name for name, _, _ in gen_ref.cli_commands()]
    assert "mlops train" in commands and "mlops predict-batch" in commands
    for name in commands:
        assert f"## `{name}`" in page, f"{name} missing from the CLI reference"
    assert "`-n, --trials <int range>`" in page  # options come with their help


def test_alerts_page_has_an_anchor_for_every_rules_runbook_link(gen_ref: ModuleType) -> None:
    page = gen_ref.alerts_page()
    headings = {h.lower() for h in re.findall(r"^## (\w+)$", page, flags=re.M)}
    for path in (ROOT / "monitoring" / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                anchor = rule["annotations"]["runbook"].split("#")[1]
                assert anchor in headings, f"{rule['alert']}: #{anchor} is not on the alerts page"
    assert "*No runbook section yet.*" not in page


def test_home_page_is_the_readme_with_site_links(gen_ref: ModuleType) -> None:
    page = gen_ref.home_page()
    assert "](workflows/train.md)" in page
    assert "](docs/" not in page
