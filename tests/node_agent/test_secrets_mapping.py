"""Credential aliases to Triton's environment; values never reach a log."""
import logging

import pytest

from tarn_node_agent.errors import SecretsError
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


@pytest.mark.parametrize("alias, name", [("tarn.env.ld_preload", "LD_PRELOAD"), ("tarn.env.path", "PATH"),
                                         ("tarn.env.pythonpath", "PYTHONPATH"),
                                         ("tarn.env.cuda_injection64_path", "CUDA_INJECTION64_PATH")])
def test_an_alias_mapping_to_a_variable_that_changes_which_code_triton_loads_is_refused_naming_it(alias, name):
    with pytest.raises(SecretsError) as failure:
        map_to_environment({"huggingface.token": "hf_value", alias: "/tmp/evil.so"})
    assert f"credential alias {alias!r} maps to {name}" in str(failure.value)
    assert "/tmp/evil.so" not in str(failure.value) and "hf_value" not in str(failure.value)


def test_the_gateway_key_alias_is_kept_apart_from_tritons_environment_and_never_printed():
    mapped = map_to_environment({"tarn.gateway.key": "k" * 32, "tarn.env.my_var": "v1"})

    assert mapped.gateway_key == "k" * 32
    assert mapped.values == {"MY_VAR": "v1"} and mapped.ignored_aliases == []
    assert "k" * 32 not in repr(mapped)


@pytest.mark.parametrize("key", ["short", "has space in it 1234", "with:colon-and-more-chars", "a=b" * 8, "%" * 20])
def test_a_gateway_key_triton_or_the_gateways_could_not_carry_is_refused_without_printing_it(key):
    with pytest.raises(SecretsError, match="'tarn.gateway.key' must be 16 to 512 characters") as failure:
        map_to_environment({"tarn.gateway.key": key})
    assert key not in str(failure.value)
