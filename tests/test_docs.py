"""The README and docs/ document every command-line option and setting, and each `--for` preset, in the user's words."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

import create
import migrate
from cassio_migration.frameworks import KINDS, preset
from cassio_migration.handoff import READERS, open_with
from cassio_migration.job import FRAMEWORKS, Clusters, Job
from cassio_migration.legacy import LegacyTable
from cassio_migration.target import TargetSpec, target_spec
from settings import VARIABLES, settings_markdown

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PAGES = {p.name: p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}
ALL_DOCS = "\n".join([README, *PAGES.values()])


@pytest.mark.parametrize("command", [create.main, migrate.main], ids=["create.py", "migrate.py"])
def test_docs_mention_every_option(command: click.Command) -> None:
    options = [opt for p in command.params if isinstance(p, click.Option) for opt in p.opts if opt.startswith("--")]
    assert options
    missing = [opt for opt in options if opt not in ALL_DOCS and opt != "--help"]
    assert missing == []


def test_docs_mention_every_setting() -> None:
    assert [v.name for v in VARIABLES if v.name not in ALL_DOCS] == []


def test_settings_page_lists_every_setting_as_settings_py_declares_it() -> None:
    assert PAGES["settings.md"].endswith(settings_markdown()), "run: python settings.py --markdown"


def test_readme_is_short_and_links_every_page() -> None:
    assert len(README.splitlines()) <= 200
    linked = set(re.findall(r"\(docs/([\w-]+\.md)\)", README))
    assert set(PAGES) - {"astra.md"} <= linked  # astra.md: written alongside, linked already


# Words of the developers, not the users': issue numbers, commit hashes, private names.
JARGON = [
    r"\bissues? \d",
    r"(?<![-\w])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(?![-\w])",  # a commit hash, not a UUID
    r"_normalize_kwargs",
    r"`Pace`",
    r"\bb/a\b",
    r"\.\./shared",
    r"this bundle",
    r"the original scripts",
]


@pytest.mark.parametrize("name", ["README.md", *PAGES])
def test_docs_speak_the_users_language(name: str) -> None:
    text = README if name == "README.md" else PAGES[name]
    found = [m.group(0) for pattern in JARGON for m in re.finditer(pattern, text)]
    assert found == []


# "## LangChain (`--for langchain`)" and what follows it, up to the next heading of its level
FRAMEWORKS_PAGE = PAGES["frameworks.md"]
SECTIONS = {
    m[1]: m[2] for m in re.finditer(r"^## [^\n]*\(`--for (\w+)`[^\n]*\n(.*?)(?=^## |\Z)", FRAMEWORKS_PAGE, re.M | re.S)
}
EXAMPLES = {  # the vector table of each section's example: the lines it shows are what migrate.py prints for it
    "cassio": LegacyTable("app", "legacy_vectors", "uuid", 1536),
    "langchain": LegacyTable("app", "lc_docs", "text", 1536),
    "llamaindex": LegacyTable("app", "li_nodes", "text", 1536),
}
TARGETS = {"cassio": "vectors", "langchain": "lc_docs_v1", "llamaindex": "li_nodes_v1"}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_frameworks_page_has_a_section_per_framework(framework: str) -> None:
    section = SECTIONS.get(framework)
    assert section, f"docs/frameworks.md: no section '## ... (`--for {framework}`)'"
    for kind in KINDS[framework] if framework != "cassio" else ("vector",):
        assert READERS[framework](TargetSpec("app", "t", "text", 16, kind=kind)).name in section, kind
    if framework != "cassio":
        assert f"python migrate.py --for {framework}" in section
    source = EXAMPLES[framework]
    job = preset(Job(Clusters(), "app", source.table, TARGETS[framework], target_framework=framework), source)
    printed = open_with(job, target_spec(source, job))["code"]
    assert f"```python\n{printed}\n```" in section, (
        "docs/frameworks.md: the lines shown are not those migrate.py prints"
    )
