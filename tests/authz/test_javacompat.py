"""The Java behaviours Ranger's answers depend on (orders recorded from OpenJDK 17)."""
from __future__ import annotations

import pytest

from tarn_authz.ranger.javacompat import fold_case, java_hash_order, split_wildcard_tokens, wildcard_prefix_match
from tarn_authz.ranger.validity import java_time_zone


@pytest.mark.parametrize(("names", "java_order"), [
    ("infer,metadata,list", "metadata,infer,list"),
    ("read,create,delete", "read,create,delete"),
    ("publish,consume,configure,describe,kafka_admin,create,delete,idempotent_write,describe_configs,"
     "alter_configs,cluster_action,alter",
     "describe_configs,alter_configs,idempotent_write,publish,create,consume,configure,describe,kafka_admin,"
     "delete,cluster_action,alter"),
    ("select,update,create,drop,alter,index,lock,all,read,write,repladmin,serviceadmin,tempudfadmin,refresh",
     "drop,all,select,read,update,index,refresh,tempudfadmin,serviceadmin,create,lock,repladmin,write,alter"),
])
def test_hash_set_iteration_order_matches_java(names, java_order):
    assert java_hash_order(names.split(",")) == java_order.split(",")


def test_fold_case_keeps_length_for_characters_java_folds_one_to_one():
    assert fold_case("Straße-MODEL") == "straße-model"
    assert len(fold_case("ß")) == 1


@pytest.mark.parametrize(("value", "pattern", "expected"), [
    ("", "abc*", True),
    ("ab", "abc*", True),
    ("abx", "abc*", False),
    ("xyz", "*z?q", False),  # Ranger's walk gives up once '?' runs past the value's end
    ("xy", "*z?q", True),
    ("a1", "a?c", True),
    ("a1d", "a?c", False),
    ("abcabc", "a*c*d", True),
])
def test_wildcard_prefix_match(value, pattern, expected):
    assert wildcard_prefix_match(value, split_wildcard_tokens(pattern)) is expected


def test_unknown_time_zone_is_gmt_and_custom_offsets_work():
    assert java_time_zone("Not/AZone").utcoffset(None).total_seconds() == 0
    assert java_time_zone("GMT+05:30").utcoffset(None).total_seconds() == 5.5 * 3600
