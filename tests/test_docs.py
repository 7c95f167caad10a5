"""The README documents every command-line option of the bundle's scripts, and each `--for` preset."""

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

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("command", [create.main, migrate.main], ids=["create.py", "migrate.py"])
def test_readme_mentions_every_option(command: click.Command) -> None:
    options = [opt for p in command.params if isinstance(p, click.Option) for opt in p.opts if opt.startswith("--")]
    assert options
    missing = [opt for opt in options if opt not in README and opt != "--help"]
    assert missing == []


# "### LangChain (`--for langchain`)" and what follows it, up to the next heading
SECTIONS = {m[1]: m[2] for m in re.finditer(r"^### [^\n]*\(`--for (\w+)`[^\n]*\n(.*?)(?=^##)", README, re.M | re.S)}
EXAMPLES = {  # the vector table of each section's example: the lines it shows are what migrate.py prints for it
    "cassio": LegacyTable("app", "legacy_vectors", "uuid", 1536),
    "langchain": LegacyTable("app", "lc_docs", "text", 1536),
    "llamaindex": LegacyTable("app", "li_nodes", "text", 1536),
}
TARGETS = {"cassio": "vectors", "langchain": "lc_docs_v1", "llamaindex": "li_nodes_v1"}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_readme_has_a_section_per_framework(framework: str) -> None:
    section = SECTIONS.get(framework)
    assert section, f"README: no section '### ... (`--for {framework}`)'"
    for kind in KINDS[framework] if framework != "cassio" else ("vector",):
        assert READERS[framework](TargetSpec("app", "t", "text", 16, kind=kind)).name in section, kind
    if framework != "cassio":
        assert f"python migrate.py --for {framework}" in section
    source = EXAMPLES[framework]
    job = preset(Job(Clusters(), "app", source.table, TARGETS[framework], target_framework=framework), source)
    printed = open_with(job, target_spec(source, job))["code"]
    assert f"```python\n{printed}\n```" in section, "README: the lines shown are not those migrate.py prints"
