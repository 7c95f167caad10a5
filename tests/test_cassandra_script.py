"""Drive scripts/cassandra.sh through subprocess: exit codes and messages.

None of these tests starts a node. The status/reuse tests expect the session's node
to answer CQL on CASSANDRA_PORT (default 9042), e.g. after `scripts/cassandra.sh start`;
the others use a temporary CASSANDRA_WORKDIR and ports that no node uses.
"""

import os
import socket
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cassandra.sh"
NODE_PORT = int(os.environ.get("CASSANDRA_PORT", "9042"))


def run(*args, env=None, timeout=60):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def isolated_env(tmp_path, port, **extra):
    """A workdir with no pid file and no jars, on a port of our choosing."""
    env = {
        "CASSANDRA_WORKDIR": str(tmp_path / "wd"),
        "CASSANDRA_PORT": str(port),
        # Keep the derived default (7000 + port - 9042) out of the way of real nodes.
        "CASSANDRA_STORAGE_PORT": str(free_port()),
    }
    env.update(extra)
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def running_node(node):
    """Fail fast (rather than let `start` launch a node) if the session node is down."""
    result = run("status")
    if result.returncode != 0:
        pytest.fail(
            f"no Cassandra node answers on port {NODE_PORT}; run `scripts/cassandra.sh start` "
            f"first (status said: {result.stdout.strip()})"
        )
    return NODE_PORT


def test_status_reports_running_node(running_node):
    result = run("status")
    assert result.returncode == 0, result
    assert result.stdout.startswith("running"), result.stdout
    assert str(running_node) in result.stdout


def test_second_start_reuses_running_node(running_node):
    result = run("start")
    assert result.returncode == 0, result
    assert "reusing" in result.stdout.lower(), result.stdout
    assert str(running_node) in result.stdout


def test_status_without_node_exits_3(tmp_path):
    port = free_port()
    result = run("status", env=isolated_env(tmp_path, port))
    assert result.returncode == 3, result
    assert result.stdout.startswith("not running"), result.stdout
    assert str(port) in result.stdout


def test_start_on_port_held_by_non_cql_listener(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        result = run("start", env=isolated_env(tmp_path, port), timeout=30)
    assert result.returncode == 2, result
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert f"port {port}" in lines[0]
    assert "CASSANDRA_PORT" in lines[0]
    # It must neither download jars nor prepare a node for a port it cannot use.
    assert not (tmp_path / "wd" / "lib").exists()
    assert not (tmp_path / "wd" / f"node-{port}").exists()


def test_stop_without_pid_file_has_nothing_to_stop(tmp_path):
    result = run("stop", env=isolated_env(tmp_path, free_port()))
    assert result.returncode == 0, result
    assert "nothing to stop" in result.stdout


def test_start_without_java_exits_2(tmp_path):
    env = isolated_env(tmp_path, free_port(), JAVA_BIN=str(tmp_path / "no-such-java"))
    result = run("start", env=env)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "java" in lines[0].lower()
    assert result.stdout == ""


def test_start_without_maven_and_no_cached_jars_exits_2(tmp_path):
    env = isolated_env(tmp_path, free_port(), MVN_BIN=str(tmp_path / "no-such-mvn"))
    result = run("start", env=env)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "mvn" in lines[0].lower() or "maven" in lines[0].lower()


def test_unknown_command_exits_2():
    result = run("frobnicate")
    assert result.returncode == 2
    assert "usage" in result.stderr
