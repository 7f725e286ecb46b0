"""The strict shapes of names taken from Redis, held against hostile strings: whatever
passes can never carry a Runtime API separator, a path escape or a non-ASCII character."""
import pytest
from hypothesis import given, settings, strategies as st

from tarn_gateway_sync.strict_names import (
    BACKEND, ZK_PATH_MAX, backend_problem, host_problem, parse_ensemble, port_problem, zk_path_problem)

HOSTILE_PIECES = [";", "\n", "\r", "\x00", " ", "\t", "/", "..", "//", "é", "١", "\u200b", "ｓ", "%", "#"]
# Text mixing ASCII with the pieces an attacker reaches for.
hostile_text = st.lists(st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(max_size=5)), max_size=12).map("".join)


def _clean_ascii(value: str, allowed: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in allowed) for c in value)


@given(hostile_text)
@settings(max_examples=400)
def test_a_backend_that_passes_holds_only_letters_digits_underscores_dots_and_dashes(name):
    if backend_problem(name) is None:
        assert _clean_ascii(name, "_.-") and 1 <= len(name) <= 63


@pytest.mark.parametrize("name", ["x; del server triton_backend/tarn-1", "b\nshutdown sessions server b/s",
                                  "b\r", "b\x00", "tri ton", "", "-leading", "b" * 64, "backend/é", "b١",
                                  "triton_backend\n"])
def test_hostile_backends_are_refused_with_the_reason(name):
    problem = backend_problem(name)
    assert problem and "backend" in problem


def test_plain_backends_pass():
    assert backend_problem("triton_backend") is None and backend_problem("test_dyn_3") is None
    assert backend_problem("b" * 63) is None and BACKEND.pattern.startswith("[A-Za-z0-9]")


@given(hostile_text.map(lambda t: "/" + t))
@settings(max_examples=400)
def test_a_zk_path_that_passes_has_no_empty_dot_or_foreign_segment(path):
    if zk_path_problem(path) is None:
        segments = path[1:].split("/")
        assert all(s and s not in (".", "..") and not s.startswith(".") for s in segments)
        assert all(_clean_ascii(s, "_.-") for s in segments) and len(path) <= ZK_PATH_MAX


@pytest.mark.parametrize("path", ["/services/triton/../../zookeeper", "/services/triton/..", "/a//b", "/a/b/",
                                  "/", "", "services/triton", "/a/./b", "/a/.hidden", "/a\x00b", "/a\nb",
                                  "/a b", "/a;b", "/é", "/" + "a" * 300])
def test_hostile_zk_paths_are_refused(path):
    assert zk_path_problem(path)


def test_plain_zk_paths_pass():
    assert zk_path_problem("/services/triton/instances") is None
    assert zk_path_problem("/tarn-test-1/services/triton/a.b_c-d") is None


@given(hostile_text)
@settings(max_examples=400)
def test_a_host_that_passes_is_an_address_or_a_host_name_without_separators(host):
    if host_problem(host) is None:
        assert _clean_ascii(host, ".-:") and not any(p in host for p in ("/", "..", "%"))


@pytest.mark.parametrize("host", ["a/b", "10.0.0.1/8", "h;x", "h\n", "h x", "", "h..x", ".h", "h.", "-h",
                                  "h" * 64, "é.example", "fe80::1%eth0", "1.2.3.999", "::g", "a" * 254,
                                  "127.0.0.1:8000", "١٢٧.0.0.1"])
def test_hostile_hosts_are_refused(host):
    assert host_problem(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "2001:db8::5", "node-7.cluster.example", "localhost",
                                  "ip-10-0-0-1"])
def test_addresses_and_host_names_pass(host):
    assert host_problem(host) is None


@pytest.mark.parametrize("port, ok", [(1, True), (65535, True), (0, False), (65536, False), (-1, False),
                                      (True, False), ("80", False)])
def test_a_port_is_an_integer_from_1_to_65535(port, ok):
    assert (port_problem(port) is None) is ok


def test_an_ensemble_is_parsed_into_sorted_lower_case_hosts_and_a_chroot():
    name, problem = parse_ensemble("ZK2:2181,zk1:2181/tarn/prod")
    assert problem is None and name.hosts == "zk1:2181,zk2:2181" and name.chroot == "/tarn/prod"
    assert parse_ensemble("127.0.0.1:2181")[0].chroot == ""
    assert parse_ensemble("[::1]:2181")[1] is None


@pytest.mark.parametrize("connection", ["", "zk1", "zk1:", "zk1:99999", "zk1:0", "zk1:2181/", "zk1:2181/../x",
                                        "zk1:2181;zk2:2181", "zk 1:2181", "zk1:2181,", "zk1:2181//x", "zk/1:2181",
                                        "zk1:٢١٨١", ",".join(["zk:2181"] * 17)])
def test_hostile_ensembles_are_refused(connection):
    name, problem = parse_ensemble(connection)
    assert name is None and problem


@given(hostile_text)
@settings(max_examples=400)
def test_an_ensemble_that_parses_has_only_clean_hosts_and_a_clean_chroot(connection):
    name, problem = parse_ensemble(connection)
    if name is not None:
        assert problem is None and all(host_problem(h.rpartition(":")[0].strip("[]")) is None
                                       for h in name.hosts.split(","))
        assert name.chroot == "" or zk_path_problem(name.chroot) is None
