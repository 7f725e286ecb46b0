"""Credential aliases to Triton's environment; values never reach a log."""
import logging

from tarn_node_agent.secrets import map_to_environment
from tarn_shared.jceks import DEFAULT_STORE_PASSWORD, store_password


def test_aliases_map_to_variables_and_others_are_ignored_with_a_warning_naming_the_alias(caplog):
    caplog.set_level(logging.WARNING)
    mapped = map_to_environment({"huggingface.token": "hf_value", "tarn.env.my_var": "v1",
                                 "tarn.env.bad-name": "v2", "db.password": "v3"})

    assert mapped.values == {"HUGGING_FACE_HUB_TOKEN": "hf_value", "MY_VAR": "v1"}
    assert mapped.ignored_aliases == ["db.password", "tarn.env.bad-name"]
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "db.password" in logged
    assert not any(v in logged for v in ("hf_value", "v1", "v2", "v3"))
    assert "hf_value" not in repr(mapped)


def test_the_store_password_defaults_to_hadoops_none():
    assert store_password({}) == DEFAULT_STORE_PASSWORD == "none"
    assert store_password({"HADOOP_CREDSTORE_PASSWORD": "pw"}) == "pw"
