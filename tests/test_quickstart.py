"""The README's quick start is what the tests run: its .env examples load, the demo's is the one
`make demo` uses, and its commands run, in order, on the real node."""

from __future__ import annotations

import io
import os
import re
import shlex
from pathlib import Path

from dotenv import dotenv_values

import migrate
from cassio_migration.errors import EXIT_OK
from settings import Settings, load_settings
from tests.helpers import PORT, ROOT, ca_file, run_script

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```\n(.*?)^```", README, re.M | re.S)
ENV_BLOCKS = [b for b in BLOCKS if all(re.fullmatch(r"[A-Z_]+=\S*", line) for line in b.splitlines())]
COMMANDS = [
    shlex.split(line.partition("#")[0])
    for block in BLOCKS
    for line in block.splitlines()
    if line.startswith("python migrate.py")
]
ASKS_FIRST = {"--cleanup", "--restart", "--delete-extra"}  # the README says: they ask, --yes answers


def env_example(marker: str) -> str:
    [block] = [b for b in ENV_BLOCKS if marker in b]
    return block


def test_readme_shows_three_complete_env_examples() -> None:
    assert len(ENV_BLOCKS) == 3
    for marker in ("ASTRA_DB_APPLICATION_TOKEN", "CASSANDRA_PASSWORD", "CASSANDRA_KEYSPACE=demo"):
        assert env_example(marker)


def load_example(block: str, tmp_path: Path) -> Settings:
    """The settings a .env of this text gives (its files, made where it names them: tmp_path)."""
    ca = ca_file(tmp_path / "ca.pem")
    env = tmp_path / ".env"
    env.write_text(re.sub(r"(?m)^(CASSANDRA_TLS_CA_FILE)=.*$", rf"\1={ca}", block), encoding="utf-8")
    return load_settings(environ={}, dotenv_path=str(env))


def test_astra_example_loads(tmp_path: Path) -> None:
    s = load_example(env_example("ASTRA_DB_APPLICATION_TOKEN"), tmp_path)
    job = s.job()
    assert s.is_astra and job.clusters.source.astra_db_id
    assert (job.keyspace, job.old_table, job.target_table, job.target_framework) == (
        "my_keyspace",
        "my_vectors",
        "my_vectors_v1",
        "langchain",
    )


def test_own_cluster_example_loads(tmp_path: Path) -> None:
    s = load_example(env_example("CASSANDRA_PASSWORD"), tmp_path)
    spec = s.connection()
    assert len(spec.contact_points) == 3 and spec.username and spec.password and spec.tls_ca_file
    assert s.job().keyspace == "my_keyspace"


def test_demo_example_is_the_one_make_demo_uses(tmp_path: Path) -> None:
    block = env_example("CASSANDRA_KEYSPACE=demo")
    demo_env = ROOT / "scripts" / "demo.env"
    assert dotenv_values(stream=io.StringIO(block)) == dotenv_values(demo_env)
    demo_sh = (ROOT / "scripts" / "demo.sh").read_text()
    assert "ENV_FILE=scripts/demo.env" in demo_sh and demo_sh.count('--env-file "$ENV_FILE"') == 5
    s = load_example(block, tmp_path)
    assert s.job().keyspace == "demo"


def test_readme_commands_are_migrate_py_commands() -> None:
    assert [c[2:] for c in COMMANDS] == [["--dry-run"], [], ["--verify"], ["--status"], ["--cleanup"]]
    for command in COMMANDS:
        migrate.main.make_context("migrate.py", command[2:])  # each parses: no unknown flag


def test_readme_install_and_make_commands_are_true() -> None:
    assert "pip install -r requirements.txt" in README
    runtime = (ROOT / "requirements.txt").read_text().lower()
    for tool in ("pytest", "ruff", "mypy", "psutil", "hypothesis"):
        assert tool not in runtime
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make demo\n" in README and "make test\n" in README


def test_readme_quick_start_runs_on_the_demo_env(keyspace: str, tmp_path: Path) -> None:
    env_file = tmp_path / "demo.env"
    env_file.write_text(env_example("CASSANDRA_KEYSPACE=demo"), encoding="utf-8")
    # The environment wins over the file: this test's own keyspace, a small table.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CASSANDRA_PORT": str(PORT),
        "CASSANDRA_KEYSPACE": keyspace,
        "VECTOR_DIMENSION": "16",
        "MIGRATION_RUNS_DIR": str(tmp_path / "runs"),
        "MIGRATION_CLOCK_SKEW_SECONDS": "0",
    }
    assert run_script("create.py", env, tmp_path, "--env-file", str(env_file), "--rows", "300", "--quiet").code == 0
    outputs = []
    for command in COMMANDS:
        args = command[2:] + (["--yes"] if ASKS_FIRST & set(command) else [])
        result = run_script("migrate.py", env, tmp_path, "--env-file", str(env_file), "--quiet", *args)
        assert result.code == EXIT_OK, f"{command}: {result.out}{result.err}"
        outputs.append(" ".join(result.out.split()))
    dry_run, copy, verify, status, cleanup = outputs
    assert "done (dry run: nothing written)" in dry_run and "rows written 300 (would be)" in dry_run
    assert "rows written 300" in copy and "verify clean" in verify
    assert "ranges" in status and "rows 300 read, 300 written" in status
    assert cleanup.startswith(f"removed the migration state of {keyspace}.vectors")
