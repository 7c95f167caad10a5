"""The driver configuration built for each kind of cluster (Astra DB cannot be reached from here)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT

from cassio_migration.connect import cluster_kwargs
from cassio_migration.errors import CredentialsError, SettingsError
from cassio_migration.job import ConnectionSpec
from settings import load_settings
from tests.helpers import astra_bundle

TOKEN = "AstraCS:abcdefgh:0123456789abcdef"


def astra_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"ASTRA_DB_APPLICATION_TOKEN": TOKEN, "ASTRA_DB_KEYSPACE": "vectors_ks", **extra}


def test_astra_with_a_secure_bundle(tmp_path: Path) -> None:
    bundle = astra_bundle(tmp_path / "secure-connect-db.zip")
    settings = load_settings(astra_env(tmp_path, ASTRA_DB_SECURE_BUNDLE_PATH=str(bundle)), dotenv_path=None)
    spec = settings.connection()
    kwargs = cluster_kwargs(spec)
    assert kwargs["cloud"] == {"secure_connect_bundle": str(bundle)}
    assert "contact_points" not in kwargs and "port" not in kwargs
    auth = kwargs["auth_provider"]
    assert isinstance(auth, PlainTextAuthProvider) and (auth.username, auth.password) == ("token", TOKEN)
    assert kwargs["execution_profiles"][EXEC_PROFILE_DEFAULT].consistency_level == ConsistencyLevel.LOCAL_QUORUM
    assert settings.resolved_keyspace() == "vectors_ks"
    assert spec.describe() == f"Astra DB ({bundle})" and TOKEN not in repr(spec)


def test_astra_with_a_database_id_fetches_the_bundle_for_that_id(tmp_path: Path) -> None:
    settings = load_settings(astra_env(tmp_path, ASTRA_DB_ID="01234567-89ab-cdef-0123-456789abcdef"), dotenv_path=None)
    asked: list[tuple[str | None, str | None]] = []

    def fetch(spec: ConnectionSpec) -> str:
        asked.append((spec.astra_db_id, spec.astra_token.reveal() if spec.astra_token else None))
        return str(tmp_path / "downloaded.zip")

    kwargs = cluster_kwargs(settings.connection(), fetch_bundle=fetch)
    assert asked == [("01234567-89ab-cdef-0123-456789abcdef", TOKEN)]
    assert kwargs["cloud"] == {"secure_connect_bundle": str(tmp_path / "downloaded.zip")}
    assert kwargs["auth_provider"].username == "token"
    assert settings.connection().describe() == "Astra DB (database 01234567-89ab-cdef-0123-456789abcdef)"


def test_astra_token_without_bundle_or_id_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^ASTRA_DB_SECURE_BUNDLE_PATH: an Astra token is set"):
        cluster_kwargs(load_settings(astra_env(tmp_path), dotenv_path=None).connection())


def test_plain_cassandra_with_credentials_and_tls(tmp_path: Path) -> None:
    pem = tmp_path / "node.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=node",
            "-keyout",
            str(tmp_path / "node.key"),
            "-out",
            str(pem),
        ],
        check=True,
        capture_output=True,
    )
    settings = load_settings(
        {
            "CASSANDRA_CONTACT_POINTS": "10.0.0.1, 10.0.0.2",
            "CASSANDRA_PORT": "9142",
            "CASSANDRA_USERNAME": "app",
            "CASSANDRA_PASSWORD": "pw",
            "CASSANDRA_TLS_CA_FILE": str(pem),
            "MIGRATION_CONSISTENCY": "quorum",
        },
        dotenv_path=None,
    )
    kwargs = cluster_kwargs(settings.connection())
    assert (kwargs["contact_points"], kwargs["port"]) == (["10.0.0.1", "10.0.0.2"], 9142)
    assert (kwargs["auth_provider"].username, kwargs["auth_provider"].password) == ("app", "pw")
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert kwargs["execution_profiles"][EXEC_PROFILE_DEFAULT].consistency_level == ConsistencyLevel.QUORUM
    assert "cloud" not in kwargs


def test_username_without_password_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^CASSANDRA_USERNAME: set both"):
        cluster_kwargs(ConnectionSpec(username="app"))


# --- a target on another cluster ------------------------------------------------------------------


def test_no_target_settings_means_one_cluster() -> None:
    clusters = load_settings({"CASSANDRA_PORT": "9100"}, None).clusters()
    assert clusters.target is None
    assert clusters.context() == {"cluster": "127.0.0.1:9100"}


def test_target_settings_make_a_target_connection_of_their_own() -> None:
    settings = load_settings(
        {"CASSANDRA_PORT": "9100", "TARGET_CASSANDRA_CONTACT_POINTS": "10.0.0.7", "TARGET_CASSANDRA_PORT": "9200"}, None
    )
    clusters = settings.clusters()
    assert clusters.target is not None
    assert (clusters.target.contact_points, clusters.target.port, clusters.target.prefix) == (
        ("10.0.0.7",),
        9200,
        "TARGET_",
    )
    assert clusters.context() == {"cluster": "127.0.0.1:9100", "target_cluster": "10.0.0.7:9200"}
    assert clusters.names("ks.a", "ks.b") == ("ks.a on 127.0.0.1:9100", "ks.b on 10.0.0.7:9200")
    assert cluster_kwargs(clusters.target)["port"] == 9200


def test_target_astra_with_its_own_token(tmp_path: Path) -> None:
    bundle = astra_bundle(tmp_path / "secure-connect-target.zip")
    settings = load_settings(
        {"TARGET_ASTRA_DB_APPLICATION_TOKEN": "AstraCS:target", "TARGET_ASTRA_DB_SECURE_BUNDLE_PATH": str(bundle)}, None
    )
    target = settings.clusters().target
    assert target is not None and target.is_astra
    kwargs = cluster_kwargs(target)
    assert kwargs["cloud"] == {"secure_connect_bundle": str(bundle)}
    assert "AstraCS:target" in settings.secrets()
    assert "AstraCS:target" not in repr(settings) + repr(target) + target.describe()


def test_half_given_target_credentials_name_the_target_variable() -> None:
    target = load_settings({"TARGET_CASSANDRA_PASSWORD": "pw"}, None).clusters().target
    assert target is not None
    with pytest.raises(SettingsError) as exc:
        cluster_kwargs(target)
    assert str(exc.value).startswith("TARGET_CASSANDRA_USERNAME: set both TARGET_CASSANDRA_USERNAME and")


def test_workers_fill_the_target_secrets_from_target_variables() -> None:
    settings = load_settings(
        {
            "CASSANDRA_USERNAME": "u",
            "CASSANDRA_PASSWORD": "src",
            "TARGET_CASSANDRA_USERNAME": "v",
            "TARGET_CASSANDRA_PASSWORD": "dst",
        },
        None,
    )
    sent = settings.clusters().without_secrets()
    assert "src" not in repr(sent.source.password) and sent.target is not None and sent.target.password != "dst"
    assert settings.clusters().secrets_environment() == {
        "CASSANDRA_PASSWORD": "src",
        "TARGET_CASSANDRA_PASSWORD": "dst",
    }
    filled = sent.with_secrets_from_environment({"CASSANDRA_PASSWORD": "a", "TARGET_CASSANDRA_PASSWORD": "b"})
    assert filled.target is not None and filled.source.password and filled.target.password
    assert (filled.source.password.reveal(), filled.target.password.reveal()) == ("a", "b")
    with pytest.raises(CredentialsError, match="TARGET_CASSANDRA_PASSWORD is not set in this worker's environment"):
        sent.with_secrets_from_environment({"CASSANDRA_PASSWORD": "a"})
