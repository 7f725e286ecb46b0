"""Settings: required values fail at start with a clear message; lists from the environment."""
import pytest

from tarn_gateway_sync.haproxy import parse_servers_state
from tarn_gateway_sync.plan import Admin
from tarn_gateway_sync.settings import GatewaySyncSettings
from tarn_gateway_sync.zookeeper import parse_acl
from tarn_shared.errors import ConfigError


def test_missing_zookeeper_and_haproxy_are_named_with_their_variables(monkeypatch):
    monkeypatch.delenv("TARN_GATEWAY_SYNC_ZK_HOSTS", raising=False)
    monkeypatch.delenv("TARN_GATEWAY_SYNC_HAPROXY_SOCKETS", raising=False)
    with pytest.raises(ConfigError) as failure:
        GatewaySyncSettings.load()
    assert "TARN_GATEWAY_SYNC_ZK_HOSTS" in str(failure.value)
    assert "TARN_GATEWAY_SYNC_HAPROXY_SOCKETS" in str(failure.value)


def test_several_haproxy_sockets_and_acls_come_comma_separated(monkeypatch):
    monkeypatch.setenv("TARN_GATEWAY_SYNC_ZK_HOSTS", "zk1:2181,zk2:2181/tarn")
    monkeypatch.setenv("TARN_GATEWAY_SYNC_HAPROXY_SOCKETS", "/run/haproxy/a.sock, tcp:10.0.0.5:9999")
    monkeypatch.setenv("TARN_GATEWAY_SYNC_ZK_ACL", "world:anyone:r,digest:gw:c2VjcmV0:cdrwa")
    settings = GatewaySyncSettings.load()
    assert settings.haproxy_sockets == ["/run/haproxy/a.sock", "tcp:10.0.0.5:9999"]
    acl = parse_acl(settings.zk_acl)
    assert acl[0].id.scheme == "world" and acl[1].id.id == "gw:c2VjcmV0" and acl[1].perms == 31


def test_a_malformed_acl_is_a_config_error():
    with pytest.raises(ConfigError):
        parse_acl(["world:anyone:rx"])


def test_servers_state_is_read_with_drain_and_maintenance_told_apart():
    answer = ("1\n# be_id be_name srv_id srv_name srv_addr ...\n"
              "3 b 1 s1 127.0.0.1 2 0 1 1 0 1 0 0 6 0 0 0 - 9 - 0 0 - - 0\n"
              "3 b 2 s2 127.0.0.1 2 8 1 1 0 1 0 0 6 0 0 0 - 10 - 0 0 - - 0\n"
              "3 b 3 triton-1 0.0.0.0 0 5 1 1 0 1 0 0 14 0 0 0 - 8000 - 0 0 - - 0\n"
              "3 b 4 triton-2 127.0.0.1 2 4 1 1 0 1 0 0 14 0 0 0 - 11 - 0 0 - - 0\n")
    servers = {s.name: s for s in parse_servers_state(answer)}
    assert servers["s1"].admin is Admin.READY and servers["s1"].port == 9 and servers["s1"].operational_up
    assert servers["s2"].admin is Admin.DRAIN
    assert servers["triton-1"].admin is Admin.MAINT
    assert servers["triton-2"].admin is Admin.READY  # a slot brought up keeps its config-maint bit


def test_allowed_ensembles_come_space_separated_and_zk_hosts_is_always_one(monkeypatch):
    monkeypatch.setenv("TARN_GATEWAY_SYNC_ZK_HOSTS", "zk1:2181,zk2:2181/tarn")
    monkeypatch.setenv("TARN_GATEWAY_SYNC_HAPROXY_SOCKETS", "/run/haproxy/a.sock")
    monkeypatch.setenv("TARN_GATEWAY_SYNC_ALLOWED_ZK_ENSEMBLES", "zk7:2181,zk8:2181 zk9:2181/other")
    settings = GatewaySyncSettings.load()
    assert settings.allowed_ensembles() == ["zk1:2181,zk2:2181/tarn", "zk7:2181,zk8:2181", "zk9:2181/other"]
    assert settings.allowed_backends == ["triton_backend", "triton_slots"]
    assert settings.allowed_zk_paths == ["/services/triton"]


@pytest.mark.parametrize("field, value", [("allowed_backends", ["ok", "x; del server"]),
                                          ("allowed_zk_paths", ["/services/../x"]),
                                          ("allowed_zk_ensembles", ["zk1:2181;zk2"]), ("zk_hosts", "zk1")])
def test_a_badly_shaped_allowance_is_a_config_error_naming_its_variable(field, value):
    values = {"zk_hosts": "zk1:2181", "haproxy_sockets": ["/run/haproxy/a.sock"], field: value}
    with pytest.raises(ConfigError) as failure:
        GatewaySyncSettings.load(**values)
    assert f"TARN_GATEWAY_SYNC_{field.upper()}" in str(failure.value)


@pytest.mark.parametrize("url, ok", [("redis://tarn-gateway-sync:pw@redis:6379/0", True),
                                     ("rediss://u:pw@redis:6380/0?ssl_ca_certs=/etc/tarn/ca.pem", True),
                                     ("unix:///run/redis.sock", True), ("http://redis:6379", False)])
def test_the_redis_url_takes_an_acl_user_and_tls_and_nothing_but_redis(url, ok):
    values = {"zk_hosts": "zk1:2181", "haproxy_sockets": ["/run/haproxy/a.sock"], "redis_url": url}
    if ok:
        assert GatewaySyncSettings.load(**values).redis_url == url
    else:
        with pytest.raises(ConfigError, match="TARN_GATEWAY_SYNC_REDIS_URL"):
            GatewaySyncSettings.load(**values)
