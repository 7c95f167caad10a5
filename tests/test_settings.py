"""settings.py: defaults, .env vs environment, validation, keyspace resolution, secrets, template.env."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from dotenv import dotenv_values

import migrate
import settings
from cassio_migration.errors import EXIT_USAGE, SettingsError
from cassio_migration.job import ConnectionSpec, MaxErrors, MetadataIndexing, RunOptions, Secret
from settings import VARIABLES, Settings, load_settings, template_env
from tests.helpers import astra_bundle, ca_file

TEMPLATE = Path(__file__).resolve().parent.parent / "template.env"

PASSWORD = "pw-Secr3t-xyzzy"
TOKEN = "AstraCS:tok-abcdef-123456"


def load(env: dict[str, str] | None = None, dotenv: str | None = None, tmp_path: Path | None = None) -> Settings:
    """Settings from `env` only, or from `env` over a .env file holding `dotenv`."""
    path = None
    if dotenv is not None:
        assert tmp_path is not None
        env_file = tmp_path / ".env"
        env_file.write_text(dotenv, encoding="utf-8")
        path = str(env_file)
    return load_settings(environ=env or {}, dotenv_path=path)


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_with_empty_environment_and_no_dotenv():
    s = load_settings(environ={}, dotenv_path=None)
    assert s == Settings()
    assert s.contact_points == ("127.0.0.1",)
    assert s.port == 9042
    assert s.username is None and s.password is None
    assert s.tls_ca_file is None
    assert s.keyspace is None and s.old_table is None and s.target_table is None
    assert s.vector_dimension == 1536
    assert s.num_sample_vectors == 10_000
    assert s.consistency == "local_quorum"
    assert s.concurrency == 128
    assert s.parallel_ranges == 4
    assert s.page_size == 200
    assert s.splits == 0
    assert s.rate_limit == 0.0
    assert s.retry_seconds == 120.0
    assert s.runs_dir == "runs"
    assert s.metadata_indexing == MetadataIndexing("all")
    assert s.max_errors == MaxErrors()
    assert s.target_key_type == "same"
    assert s.metadata_wrap_key is None
    assert not s.is_astra


def test_the_engines_own_defaults_are_the_settings_defaults():
    """RunOptions and ConnectionSpec have defaults of their own (for library use): they must be the settings'."""
    settings = load_settings(environ={}, dotenv_path=None)
    assert settings.run_options() == RunOptions()
    assert settings.connection() == ConnectionSpec()


def test_missing_dotenv_file_is_ignored(tmp_path):
    s = load_settings(environ={"CASSANDRA_PORT": "9043"}, dotenv_path=str(tmp_path / "absent.env"))
    assert s.port == 9043


def test_unrelated_environment_variables_are_ignored():
    s = load_settings(environ={"PATH": "/bin", "HOME": "/root", "cassandra_port": "1"}, dotenv_path=None)
    assert s == Settings()


# --- .env vs environment ----------------------------------------------------------------------


def test_dotenv_values_are_read(tmp_path):
    s = load(
        dotenv="CASSANDRA_PORT=9999\nOLD_TABLE=legacy\nCASSANDRA_CONTACT_POINTS=h1, h2 ,,h3\nMIGRATION_RATE_LIMIT=2.5\n",
        tmp_path=tmp_path,
    )
    assert s.port == 9999
    assert s.old_table == "legacy"
    assert s.contact_points == ("h1", "h2", "h3")
    assert s.rate_limit == 2.5


def test_environment_wins_over_dotenv(tmp_path):
    s = load(
        env={"CASSANDRA_PORT": "1234", "OLD_TABLE": "from_env"},
        dotenv="CASSANDRA_PORT=9999\nOLD_TABLE=from_file\nTARGET_TABLE=file_target\n",
        tmp_path=tmp_path,
    )
    assert s.port == 1234
    assert s.old_table == "from_env"
    assert s.target_table == "file_target"


def test_empty_environment_variable_does_not_hide_dotenv_value(tmp_path):
    s = load(
        env={"OLD_TABLE": "", "CASSANDRA_PORT": ""},
        dotenv="OLD_TABLE=from_file\nCASSANDRA_PORT=9999\n",
        tmp_path=tmp_path,
    )
    assert s.old_table == "from_file"
    assert s.port == 9999


def test_empty_dotenv_value_means_default(tmp_path):
    s = load(dotenv="CASSANDRA_PORT=\nCASSANDRA_USERNAME=\nMETADATA_INDEXING=\n", tmp_path=tmp_path)
    assert s.port == 9042
    assert s.username is None
    assert s.metadata_indexing == MetadataIndexing("all")


def test_dotenv_inline_comments_are_not_part_of_values(tmp_path):
    s = load(dotenv="CASSANDRA_PORT=9043   # the port\nCASSANDRA_USERNAME=    # empty\n", tmp_path=tmp_path)
    assert s.port == 9043
    assert s.username is None


def test_template_env_loads_as_a_dotenv():
    s = load_settings(environ={}, dotenv_path=str(TEMPLATE))
    assert s.contact_points == ("127.0.0.1",)
    assert s.port == 9042
    assert s.username is None and s.password is None and s.astra_token is None
    assert s.metadata_wrap_key is None
    assert s.progress_seconds == 30


def test_template_env_leaves_keyspace_and_tables_to_the_user():
    """No pre-filled CASSANDRA_KEYSPACE to win over an Astra user's ASTRA_DB_KEYSPACE."""
    s = load_settings(
        environ={"ASTRA_DB_KEYSPACE": "my_ks", "ASTRA_DB_APPLICATION_TOKEN": TOKEN}, dotenv_path=str(TEMPLATE)
    )
    assert s.resolved_keyspace() == "my_ks"
    assert s.old_table is None and s.target_table is None


def test_template_env_has_a_part_to_set_and_a_part_to_leave():
    text = TEMPLATE.read_text(encoding="utf-8")
    first, _, second = text.partition("# === Tuning")
    assert "# === Set these" in first and second
    to_set = set(dotenv_values(stream=io.StringIO(first)))
    assert {
        "CASSANDRA_CONTACT_POINTS",
        "ASTRA_DB_APPLICATION_TOKEN",
        "CASSANDRA_KEYSPACE",
        "OLD_TABLE",
        "TARGET_TABLE",
    } <= to_set
    assert "TARGET_FRAMEWORK" in to_set and len(to_set) <= 16
    assert "MIGRATION_CONCURRENCY" not in to_set


# --- parsing of valid values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "attr", "expected"),
    [
        ("CASSANDRA_PORT", " 9043 ", "port", 9043),
        ("CASSANDRA_PORT", "1", "port", 1),
        ("CASSANDRA_PORT", "65535", "port", 65535),
        ("NUM_SAMPLE_VECTORS", "100_000", "num_sample_vectors", 100_000),
        ("NUM_SAMPLE_VECTORS", "0", "num_sample_vectors", 0),
        ("VECTOR_DIMENSION", "8192", "vector_dimension", 8192),
        ("MIGRATION_SPLITS", "0", "splits", 0),
        ("MIGRATION_RETRY_SECONDS", "0.5", "retry_seconds", 0.5),
        ("MIGRATION_CONSISTENCY", "QUORUM", "consistency", "quorum"),
        ("MIGRATION_PROTOCOL_VERSION", " 5 ", "protocol_version", 5),
        ("MIGRATION_PROTOCOL_VERSION", "Auto", "protocol_version", None),
        ("MIGRATION_WINDOW", "FIXED", "window", "fixed"),
        ("MIGRATION_REQUEST_TIMEOUT", "2.5", "request_timeout", 2.5),
        ("MIGRATION_SCAN_ROUTING", "any", "scan_routing", "any"),
        ("MIGRATION_ROWS_PER_RANGE", "5000", "rows_per_range", 5000),
        ("TARGET_KEY_TYPE", " Text ", "target_key_type", "text"),
        ("METADATA_INDEXING", "NONE", "metadata_indexing", MetadataIndexing("none")),
        ("METADATA_INDEXING", "Allow: a , b,,", "metadata_indexing", MetadataIndexing("allow", ("a", "b"))),
        ("METADATA_INDEXING", "deny:x", "metadata_indexing", MetadataIndexing("deny", ("x",))),
        ("MIGRATION_MAX_ERRORS", " 100 ", "max_errors", MaxErrors(rows=100)),
        ("MIGRATION_MAX_ERRORS", "0.5%", "max_errors", MaxErrors(share=0.005)),
        ("CASSANDRA_PASSWORD", "pw", "password", Secret("pw")),
        ("METADATA_WRAP_KEY", "legacy", "metadata_wrap_key", "legacy"),
        ("CASSANDRA_CONTACT_POINTS", "10.0.0.1,10.0.0.2", "contact_points", ("10.0.0.1", "10.0.0.2")),
    ],
)
def test_valid_values_are_parsed(name, raw, attr, expected):
    s = load_settings(environ={name: raw}, dotenv_path=None)
    assert getattr(s, attr) == expected
    assert type(getattr(s, attr)) is type(expected)


def test_tls_ca_file_that_exists_is_accepted(tmp_path):
    ca = ca_file(tmp_path / "ca.pem")
    s = load_settings(environ={"CASSANDRA_TLS_CA_FILE": str(ca)}, dotenv_path=None)
    assert s.tls_ca_file == str(ca)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("CASSANDRA_TLS_CA_FILE", "holds no CA certificate in PEM form"),
        ("TARGET_CASSANDRA_TLS_CA_FILE", "holds no CA certificate in PEM form"),
        (
            "ASTRA_DB_SECURE_BUNDLE_PATH",
            "is not a secure-connect bundle (a zip of config.json, ca.crt, cert and key): download it again"
            " from the database's Connect page in Astra's UI",
        ),
    ],
)
def test_files_that_are_not_what_their_setting_says_are_refused(tmp_path, name, problem):
    path = tmp_path / "file"
    path.write_text("-----BEGIN CERTIFICATE-----\nnot one\n", encoding="ascii")
    with pytest.raises(SettingsError) as info:
        load({name: str(path), "ASTRA_DB_APPLICATION_TOKEN": TOKEN})
    message = str(info.value)
    assert message.startswith(f"{name}: ") and str(path) in message and problem in message


@pytest.mark.parametrize(
    ("name", "attr"),
    [
        ("CASSANDRA_KEYSPACE", "keyspace"),
        ("LOCAL_KEYSPACE", "local_keyspace"),
        ("ASTRA_DB_KEYSPACE", "astra_keyspace"),
        ("OLD_TABLE", "old_table"),
        ("TARGET_TABLE", "target_table"),
        ("FAKE_DATA_OLD_TABLE", "fake_data_old_table"),
    ],
)
def test_names_are_folded_to_lower_case(name, attr):
    s = load_settings(environ={name: " My_Table2 "}, dotenv_path=None)
    assert getattr(s, attr) == "my_table2"


# --- invalid values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("CASSANDRA_PORT", "abc"),
        ("CASSANDRA_PORT", "70000"),
        ("CASSANDRA_PORT", "0"),
        ("CASSANDRA_PORT", "90.5"),
        ("VECTOR_DIMENSION", "0"),
        ("VECTOR_DIMENSION", "8193"),
        ("NUM_SAMPLE_VECTORS", "-1"),
        ("MIGRATION_CONCURRENCY", "-1"),
        ("MIGRATION_CONCURRENCY", "0"),
        ("MIGRATION_PARALLEL_RANGES", "257"),
        ("MIGRATION_PAGE_SIZE", "0"),
        ("MIGRATION_SPLITS", "-3"),
        ("MIGRATION_RATE_LIMIT", "-1"),
        ("MIGRATION_RATE_LIMIT", "fast"),
        ("MIGRATION_RATE_LIMIT", "nan"),
        ("MIGRATION_RETRY_SECONDS", "-0.5"),
        ("MIGRATION_CONSISTENCY", "two"),
        ("MIGRATION_PROTOCOL_VERSION", "6"),
        ("MIGRATION_WINDOW", "wide"),
        ("MIGRATION_REQUEST_TIMEOUT", "0"),
        ("MIGRATION_SCAN_ROUTING", "nearest"),
        ("MIGRATION_ROWS_PER_RANGE", "5"),
        ("METADATA_INDEXING", "bogus"),
        ("METADATA_INDEXING", "allow:"),
        ("METADATA_INDEXING", "allow: , "),
        ("METADATA_INDEXING", "keep:a"),
        ("TARGET_KEY_TYPE", "int"),
        ("OLD_TABLE", "bad-name"),
        ("OLD_TABLE", "1table"),
        ("TARGET_TABLE", "a" * 49),
        ("CASSANDRA_KEYSPACE", 'ks"; DROP'),
        ("CASSANDRA_CONTACT_POINTS", " , ,"),
        ("CASSANDRA_TLS_CA_FILE", "/nonexistent/ca.pem"),
        ("ASTRA_DB_SECURE_BUNDLE_PATH", "/nonexistent/secure-connect.zip"),
    ],
)
def test_invalid_value_raises_settings_error_naming_the_variable(name, raw):
    with pytest.raises(SettingsError) as info:
        load_settings(environ={name: raw}, dotenv_path=None)
    assert str(info.value).startswith(name + ":")
    assert info.value.variable == name


def test_invalid_value_in_dotenv_names_the_variable(tmp_path):
    with pytest.raises(SettingsError) as info:
        load(dotenv="VECTOR_DIMENSION=zero\n", tmp_path=tmp_path)
    assert str(info.value).startswith("VECTOR_DIMENSION:")


def test_longest_valid_name_is_accepted():
    s = load_settings(environ={"TARGET_TABLE": "a" * 48}, dotenv_path=None)
    assert s.target_table == "a" * 48


def test_settings_error_exit_code_is_2():
    assert SettingsError.exit_code == 2 == EXIT_USAGE
    assert SettingsError("X", "y").exit_code == 2


# --- keyspace resolution ------------------------------------------------------------------------


def test_cassandra_keyspace_and_the_same_older_name_agree():
    env = {"CASSANDRA_KEYSPACE": "main_ks", "LOCAL_KEYSPACE": "main_ks", "ASTRA_DB_KEYSPACE": "Main_Ks"}
    assert load(env).resolved_keyspace() == "main_ks"
    assert load({**env, "ASTRA_DB_APPLICATION_TOKEN": TOKEN}).resolved_keyspace() == "main_ks"


@pytest.mark.parametrize("older", ["ASTRA_DB_KEYSPACE", "LOCAL_KEYSPACE"])
def test_cassandra_keyspace_conflicting_with_an_older_name_is_refused(older):
    with pytest.raises(SettingsError) as info:
        load({"CASSANDRA_KEYSPACE": "demo", older: "my_ks", "ASTRA_DB_APPLICATION_TOKEN": TOKEN})
    assert str(info.value) == (
        f"CASSANDRA_KEYSPACE: 'demo' but {older} is 'my_ks': set one of the two (or the same name)"
    )


@pytest.mark.parametrize(
    "name", ["ASTRA_DB_SECURE_BUNDLE_PATH", "ASTRA_DB_ID", "TARGET_ASTRA_DB_SECURE_BUNDLE_PATH", "TARGET_ASTRA_DB_ID"]
)
def test_astra_database_without_its_token_is_refused(name, tmp_path):
    bundle = astra_bundle(tmp_path / "secure-connect-db.zip")
    value = str(bundle) if name.endswith("PATH") else "01234567-89ab-cdef-0123-456789abcdef"
    with pytest.raises(SettingsError) as info:
        load({name: value})
    prefix = name.partition("ASTRA")[0]
    assert str(info.value).startswith(f"{name}: set without {prefix}ASTRA_DB_APPLICATION_TOKEN, so it would be ignored")
    assert load({name: value, f"{prefix}ASTRA_DB_APPLICATION_TOKEN": TOKEN}).require(name) == value


@pytest.mark.parametrize(
    ("name", "raw", "port"),
    [
        ("CASSANDRA_CONTACT_POINTS", "10.0.0.5:9042", "CASSANDRA_PORT"),
        ("CASSANDRA_CONTACT_POINTS", "a.example.com, b.example.com:9142", "CASSANDRA_PORT"),
        ("TARGET_CASSANDRA_CONTACT_POINTS", "[::1]:9042", "TARGET_CASSANDRA_PORT"),
    ],
)
def test_contact_point_with_a_port_is_refused(name, raw, port):
    with pytest.raises(SettingsError) as info:
        load({name: raw})
    assert f"has a port: give host names only, and the port in {port}" in str(info.value)
    assert load({"CASSANDRA_CONTACT_POINTS": "::1, fe80::1"}).contact_points == ("::1", "fe80::1")


def test_local_keyspace_is_used_without_astra_token():
    assert load({"LOCAL_KEYSPACE": "loc"}).resolved_keyspace() == "loc"
    assert load({"LOCAL_KEYSPACE": "loc", "ASTRA_DB_KEYSPACE": "ast"}).resolved_keyspace() == "loc"


def test_astra_keyspace_is_preferred_with_astra_token():
    env = {"LOCAL_KEYSPACE": "loc", "ASTRA_DB_KEYSPACE": "ast", "ASTRA_DB_APPLICATION_TOKEN": TOKEN}
    s = load(env)
    assert s.is_astra
    assert s.resolved_keyspace() == "ast"


def test_other_keyspace_is_the_fallback():
    assert load({"ASTRA_DB_KEYSPACE": "ast"}).resolved_keyspace() == "ast"
    assert load({"LOCAL_KEYSPACE": "loc", "ASTRA_DB_APPLICATION_TOKEN": TOKEN}).resolved_keyspace() == "loc"


def test_no_keyspace_raises_naming_cassandra_keyspace():
    for env in ({}, {"ASTRA_DB_APPLICATION_TOKEN": TOKEN}):
        with pytest.raises(SettingsError) as info:
            load(env).resolved_keyspace()
        assert str(info.value).startswith("CASSANDRA_KEYSPACE")
        assert info.value.variable == "CASSANDRA_KEYSPACE"


# --- require / override -----------------------------------------------------------------------


def test_require_unset_raises_naming_the_variable():
    with pytest.raises(SettingsError) as info:
        load({}).require("OLD_TABLE")
    assert str(info.value).startswith("OLD_TABLE")
    assert info.value.variable == "OLD_TABLE"


def test_require_set_returns_the_value():
    s = load({"OLD_TABLE": "Legacy", "VECTOR_DIMENSION": "3"})
    assert s.require("OLD_TABLE") == "legacy"
    assert s.require("VECTOR_DIMENSION") == 3


def test_override_replaces_the_given_values():
    base = load({"MIGRATION_CONCURRENCY": "64", "OLD_TABLE": "src"})
    s = base.override(concurrency=8, metadata_indexing=MetadataIndexing("allow", ("a", "b")))
    assert s.concurrency == 8
    assert str(s.metadata_indexing) == "allow:a,b"
    assert s.old_table == "src"  # untouched
    assert base.concurrency == 64  # the original is unchanged (frozen)


def test_override_none_changes_nothing():
    base = load({"MIGRATION_CONCURRENCY": "64"})
    assert base.override(concurrency=None, metadata_indexing=None, page_size=None) == base


def test_override_keeps_non_string_values():
    s = load({}).override(concurrency=5, rate_limit=1.5)
    assert s.concurrency == 5
    assert s.rate_limit == 1.5


@pytest.mark.parametrize(
    ("flag", "raw"),
    [
        ("--concurrency", "0"),
        ("--concurrency", "many"),
        ("--metadata-indexing", "bogus"),
        ("--key-type", "int"),
        ("--page-size", "-1"),
        ("--max-errors", "lots"),
    ],
)
def test_an_invalid_flag_value_is_one_line_naming_the_flag(flag, raw):
    result = CliRunner().invoke(migrate.main, [flag, raw])
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {flag}: "), result.stderr


FLAG_SAMPLES = {
    "--metadata-indexing": "Allow:a, b",
    "--key-type": "TEXT",
    "--max-errors": "2.5%",
    "--scheduler": "tcp://10.0.0.1:8786",
    "--for": "LangChain",
    "--keyspace": "My_Ks",
    "--old-table": "Legacy",
    "--target-table": "new_t",
}


def test_flags_take_the_values_their_settings_take():
    """Each flag is its setting's: the same parser, its variable named in the help."""
    assert settings.FLAGGED
    for var in settings.FLAGGED:
        option = next(p for p in migrate.main.params if p.name == var.attr)
        assert option.opts == [var.flag] and f"[{var.name}" in (option.help or "")
        assert (f"default: {var.default_text}]" in (option.help or "")) == bool(var.default_text)
        sample = FLAG_SAMPLES.get(var.flag or "", "7")
        assert option.type.convert(sample, None, None) == var.parse(var.name, sample)


def test_job_and_run_options_from_settings():
    s = load(
        {
            "CASSANDRA_KEYSPACE": "ks",
            "OLD_TABLE": "old",
            "TARGET_TABLE": "new",
            "TARGET_KEY_TYPE": "text",
            "METADATA_WRAP_KEY": "legacy",
            "MIGRATION_PAGE_SIZE": "50",
        }
    )
    job, run = s.job(), s.run_options(dry_run=True)
    assert (job.keyspace, job.old_table, job.target_table) == ("ks", "old", "new")
    assert job.target_key_type == "text"
    assert job.metadata_wrap_key == "legacy"
    assert job.clusters == s.clusters()
    assert run.page_size == 50
    assert run.dry_run is True and run.restart is False


def test_settings_record_what_the_user_gave(tmp_path):
    """A framework preset fills in only the settings the user left unset: env, .env and flags count as given."""
    env = {"TARGET_KEY_TYPE": "same", "CASSANDRA_PORT": "", "CASSANDRA_KEYSPACE": "ks", "OLD_TABLE": "a"}
    s = load(env, dotenv="METADATA_INDEXING=all\nTARGET_PARTITION_ID=\n", tmp_path=tmp_path)
    assert s.explicit == {"target_key_type", "metadata_indexing", "keyspace", "old_table"}
    s = s.override(target_framework="llamaindex", partition_field=None, target_table="b")
    assert s.explicit == {
        "target_key_type",
        "metadata_indexing",
        "keyspace",
        "old_table",
        "target_framework",
        "target_table",
    }
    job = s.job()
    assert job.target_framework == "llamaindex" and job.explicit == s.explicit
    assert load({}).explicit == frozenset() and load({}) == Settings()


def test_template_env_leaves_the_framework_shaped_settings_unset():
    """A .env copied from template.env does not pin what a framework preset sets."""
    assert load_settings(environ={}, dotenv_path=str(TEMPLATE)).explicit.isdisjoint(
        {"metadata_indexing", "target_key_type", "partition_id", "partition_field"}
    )


# --- secrets --------------------------------------------------------------------------------------


def test_secrets_lists_password_and_token():
    s = load({"CASSANDRA_USERNAME": "user", "CASSANDRA_PASSWORD": PASSWORD, "ASTRA_DB_APPLICATION_TOKEN": TOKEN})
    assert sorted(s.secrets()) == sorted([PASSWORD, TOKEN])
    assert "user" not in s.secrets()


def test_secrets_empty_when_none_set():
    assert load({"CASSANDRA_USERNAME": "user"}).secrets() == []


def test_secret_variables_are_the_passwords_and_tokens():
    secrets = {"CASSANDRA_PASSWORD", "ASTRA_DB_APPLICATION_TOKEN"}
    assert {v.name for v in VARIABLES if v.secret} == secrets | {f"TARGET_{name}" for name in secrets}


def test_repr_does_not_show_secrets():
    s = load(
        {
            "CASSANDRA_USERNAME": "user",
            "CASSANDRA_PASSWORD": PASSWORD,
            "ASTRA_DB_APPLICATION_TOKEN": TOKEN,
            "CASSANDRA_KEYSPACE": "ks",
            "OLD_TABLE": "a",
            "TARGET_TABLE": "b",
        }
    )
    assert s.password == Secret(PASSWORD) and s.astra_token == Secret(TOKEN)
    for text in (repr(s), str(s), repr(s.connection()), s.connection().describe(), repr(s.job()), repr(s.password)):
        assert PASSWORD not in text
        assert TOKEN not in text
    assert "user" in repr(s)


# --- template.env is key for key the list of variables ----------------------------------------------


def test_template_env_is_made_from_the_declarations():
    assert TEMPLATE.read_text(encoding="utf-8") == template_env(), "run: python settings.py > template.env"


def test_template_env_names_exactly_the_variables():
    names = set(dotenv_values(TEMPLATE).keys())
    assert names == {v.name for v in settings.VARIABLES}


def test_variables_are_unique_and_map_to_settings_fields():
    names = [v.name for v in VARIABLES]
    attrs = [v.attr for v in VARIABLES]
    assert len(names) == len(set(names))
    assert len(attrs) == len(set(attrs))
    assert set(attrs) == set(Settings.__dataclass_fields__) - {"explicit"}


def test_every_template_variable_line_has_a_comment():
    variable_line = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
    lines = TEMPLATE.read_text(encoding="utf-8").splitlines()
    found = []
    for line in lines:
        match = variable_line.match(line)
        if not match:
            continue
        found.append(match.group(1))
        value_and_comment = line[match.end() :]
        assert re.search(r"(^|\s)#\s*\S", value_and_comment), f"no comment on: {line!r}"
    assert set(found) == {v.name for v in VARIABLES}
    assert len(found) == len(set(found)), "a variable is listed twice in template.env"
