"""`tarn submit`'s check before YARN, its pure parts: what is checked where, which password
is tried, and the verdict on what HDFS said (the real HDFS: tests/am/test_preflight.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tarn_shared.repository_layout import RemoteEntry

from tarn_am.cli.arguments import build_parser, submit_values
from tarn_am.cli.options import SubmitOptions
from tarn_am.cli.preflight import (Check, Facts, PreflightError, check_before_submit, checks_for, hdfs_user,
                                   password_hint, repository_verdict, secrets_verdict, webhdfs_for)
from tests.support.ports import free_port

CREDENTIALS = Path(__file__).resolve().parents[1] / "shared" / "data" / "credentials-s3cret.jceks"


def options(*extra: str, repository: str = "hdfs://nn:8020/models") -> SubmitOptions:
    argv = ["submit", "--runtime", "process", "--model-repository", repository, *extra]
    return SubmitOptions.parse(submit_values(build_parser().parse_args(argv), {}))


def checks(*extra: str, repository: str = "hdfs://nn:8020/models"):
    return {c.flag: c for c in checks_for(options(*extra, repository=repository))}


def entries(*specs):
    return tuple(RemoteEntry(p.rstrip("/"), p.endswith("/")) for p in specs)


def test_hdfs_locations_are_checked_and_a_local_repository_is_left_to_the_nodes():
    found = checks("--secrets", "jceks://hdfs@nn:8020/s/hf.jceks")
    assert found["--model-repository"].location.hdfs_path == "/models"
    assert (found["--secrets"].location.authority, found["--secrets"].location.hdfs_path) == ("nn:8020", "/s/hf.jceks")
    assert checks(repository="/nfs/models") == {}


def test_webhdfs_is_found_as_the_agents_find_it():
    check = checks()["--model-repository"]
    conf = {"dfs.namenode.http-address": "0.0.0.0:9870"}
    assert webhdfs_for(check, {}, conf) == "http://nn:9870"
    assert webhdfs_for(check, {"TARN_NODE_AGENT_WEBHDFS_URL": "http://other:50070"}, conf) == "http://other:50070"
    assert webhdfs_for(check, {}, {}) is None


def test_hdfs_is_read_as_the_agents_user_else_the_submitter():
    assert hdfs_user({"TARN_NODE_AGENT_HDFS_USER": "svc"}, {"HADOOP_USER_NAME": "alice"}) == "svc"
    assert hdfs_user({}, {"HADOOP_USER_NAME": "alice"}) == "alice"
    assert hdfs_user({}, {})  # the login name


def test_the_password_hint_says_what_the_containers_will_get():
    assert "the containers get (HADOOP_CREDSTORE_PASSWORD from --agent-env)" in password_hint(
        {"HADOOP_CREDSTORE_PASSWORD": "pw"}, {"HADOOP_CREDSTORE_PASSWORD": "other"})
    assert "set here but the containers do not get it" in password_hint({}, {"HADOOP_CREDSTORE_PASSWORD": "pw"})
    assert "default password \"none\"" in password_hint({}, {})


@pytest.mark.parametrize("facts,expected", [
    (Facts(None), "--model-repository hdfs://nn:8020/models: does not exist on HDFS"),
    (Facts("FILE"), "--model-repository hdfs://nn:8020/models: is a file on HDFS, not a model repository directory"),
    (Facts("DIRECTORY"), "--model-repository hdfs://nn:8020/models: not a valid Triton model repository: "
                         "it holds no model directory"),
    (Facts("DIRECTORY", entries("a/", "a/config.pbtxt", "b/", "b/1/")),
     "--model-repository hdfs://nn:8020/models: not a valid Triton model repository: "
     "model 'a' has no numeric version directory (e.g. a/1/)"),
])
def test_a_repository_no_agent_would_stage_is_refused_naming_why(facts, expected):
    assert repository_verdict(checks()["--model-repository"], facts) == expected


def test_a_valid_repository_passes():
    assert repository_verdict(checks()["--model-repository"], Facts("DIRECTORY", entries("a/", "a/1/"))) is None


def test_a_model_the_models_file_names_must_be_in_the_repository():
    facts = Facts("DIRECTORY", entries("a/", "a/1/", "b/", "b/1/"))
    assert repository_verdict(checks()["--model-repository"], facts, ["a", "b"]) is None
    assert repository_verdict(checks()["--model-repository"], facts, ["a", "c", "d"]) == (
        "--model-repository hdfs://nn:8020/models: has no model 'c', 'd' that --models names")


def secrets_check() -> Check:
    return checks("--secrets", "hdfs:///s/hf.jceks")["--secrets"]


def test_a_credential_file_that_opens_with_the_containers_password_passes():
    assert secrets_verdict(secrets_check(), Facts("FILE", data=CREDENTIALS.read_bytes()), "s3cret", "hint") is None


def test_a_credential_file_that_does_not_open_is_refused_with_the_password_hint():
    verdict = secrets_verdict(secrets_check(), Facts("FILE", data=CREDENTIALS.read_bytes()), "none", "THE HINT")
    assert verdict.startswith("--secrets: cannot open credential file hdfs:///s/hf.jceks: wrong store password")
    assert verdict.endswith("; THE HINT") and "db-test-value" not in verdict


@pytest.mark.parametrize("facts,expected", [
    (Facts(None), "--secrets hdfs:///s/hf.jceks: does not exist on HDFS"),
    (Facts("DIRECTORY"), "--secrets hdfs:///s/hf.jceks: is a directory on HDFS, not a credential file"),
    (Facts("FILE", data=b"{}"), "--secrets: credential file hdfs:///s/hf.jceks is not a readable JCEKS keystore"),
])
def test_a_missing_or_unreadable_credential_file_is_refused(facts, expected):
    assert secrets_verdict(secrets_check(), facts, "none", "THE HINT").startswith(expected)


def test_a_local_repository_without_secrets_reads_nothing():
    assert check_before_submit(options(repository="/nfs/models"), {}, warn=pytest.fail) == []


def test_what_cannot_be_checked_from_here_is_said_and_not_refused(tmp_path):
    (tmp_path / "hdfs-site.xml").write_text(
        "<configuration><property><name>dfs.namenode.http-address</name>"
        f"<value>127.0.0.1:{free_port()}</value></property></configuration>")  # nothing listens there
    warnings = []
    unchecked = check_before_submit(options("--secrets", "hdfs:///s/hf.jceks", repository="hdfs:///models"),
                                    {"HADOOP_CONF_DIR": str(tmp_path)}, warn=warnings.append)
    assert len(unchecked) == 2 and len(warnings) == 2
    assert warnings[0].startswith("tarn submit: not checked before submitting: --model-repository hdfs:///models: "
                                  "WebHDFS at http://127.0.0.1:")
    assert "unreachable" in warnings[0] and warnings[1].split(": ")[2].startswith("--secrets")


def test_no_webhdfs_address_is_said_and_not_refused():
    warnings = []
    check_before_submit(options(), {}, warn=warnings.append)
    assert warnings == ["tarn submit: not checked before submitting: --model-repository hdfs://nn:8020/models: "
                        "$HADOOP_CONF_DIR names no WebHDFS address (dfs.namenode.http-address)"]


def test_preflight_refusals_exit_as_configuration_errors():
    from tarn_am.cli.exits import EXIT_USAGE, classify
    assert classify(PreflightError("--model-repository x: does not exist on HDFS"))[0] == EXIT_USAGE == 2
