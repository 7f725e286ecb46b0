"""The `triton` Ranger service definition shipped in deploy/ranger, and what the registration
script sends with the apache-ranger client (Ranger Admin itself cannot run here)."""
from __future__ import annotations

import json

from apache_ranger.model.ranger_service_def import RangerServiceDef as ClientServiceDef

from tarn_authz.ranger import RangerServiceDef
from tests.authz.ranger_cases import REPO, TRITON_SERVICEDEF, ask, engine, item, policy
from tests.support.scripts import load_script

DEFINITION_PATH = REPO / "deploy" / "ranger" / "triton-servicedef.json"


def test_model_resource_has_wildcards_and_explicit_case_option():
    (model,) = TRITON_SERVICEDEF["resources"]
    assert model["name"] == "model"
    assert model["matcherOptions"]["wildCard"] == "true"
    assert model["matcherOptions"]["ignoreCase"] in ("true", "false")


def test_access_types_are_infer_metadata_list():
    assert [a["name"] for a in TRITON_SERVICEDEF["accessTypes"]] == ["infer", "metadata", "list"]


def test_definition_parses_as_ranger_service_def():
    parsed = RangerServiceDef.model_validate(json.loads(DEFINITION_PATH.read_text()))
    assert parsed.name == "triton" and parsed.resources[0].matcher_options["ignoreCase"] == "false"


def test_definition_round_trips_through_the_apache_ranger_client_model():
    client_def = ClientServiceDef(json.loads(DEFINITION_PATH.read_text()))
    client_def.type_coerce_attrs()
    assert client_def.name == "triton"
    assert [r.name for r in client_def.resources] == ["model"]


def test_model_names_are_case_sensitive_under_the_shipped_definition():
    eng = engine(policy(1, ["Llama-*"], allow=[item(["alice"])]))
    assert ask(eng, "Llama-3", "infer", "alice").allowed is True
    assert ask(eng, "llama-3", "infer", "alice").allowed is False


def test_registration_script_loads_and_parses_arguments():
    module = load_script("deploy/ranger/register_triton.py")
    args = module.parse_args(["--ranger-url", "http://ranger:6080", "--service", "triton-prod"])
    assert args.service == "triton-prod" and args.servicedef == DEFINITION_PATH
