"""The verdict on gateway-sync's Kerberos login for ZooKeeper SASL (pure: what GSSAPI said
in, one line naming the fix out). The real logins are in tests/kerberos/test_kerberos_faults.py."""
from tarn_gateway_sync.sasl_login import KDC_UNREACHABLE, Login, login_problem, sasl_writers

HOSTS = "zk1:2181,zk2:2181"
ACL = ["sasl:tarn-gateway-sync/gw1@EXAMPLE.COM:cdrwa", "sasl:knox/gw1@EXAMPLE.COM:r", "world:anyone:r"]
ENV = {"KRB5_CLIENT_KTNAME": "/etc/tarn/gateway-sync.keytab"}


def test_only_sasl_principals_allowed_to_create_or_write_are_writers():
    assert sasl_writers(ACL) == ["tarn-gateway-sync/gw1@EXAMPLE.COM"]


def test_the_right_principal_is_no_problem():
    assert login_problem(HOSTS, Login(principal="tarn-gateway-sync/gw1@EXAMPLE.COM"), sasl_writers(ACL), ENV) is None


def test_no_ticket_is_fatal_and_names_the_variables_to_set():
    problem = login_problem(HOSTS, Login(error="No Kerberos credentials available", error_code=-1765328243),
                            sasl_writers(ACL), {})
    assert problem.fatal
    assert problem.message == (
        "cannot log in to ZooKeeper at zk1:2181,zk2:2181 with SASL GSSAPI: Kerberos says: No Kerberos credentials "
        "available (KRB5_CLIENT_KTNAME=unset, KRB5CCNAME=unset); set KRB5_CLIENT_KTNAME to gateway-sync's keytab "
        "(or KRB5CCNAME to a ticket cache that kinit filled)")


def test_a_keytab_of_another_principal_is_fatal_and_says_who_logged_in_and_who_may_write():
    problem = login_problem(HOSTS, Login(principal="bob@EXAMPLE.COM"), sasl_writers(ACL), ENV)
    assert problem.fatal
    assert "gateway-sync logs in as bob@EXAMPLE.COM (KRB5_CLIENT_KTNAME=/etc/tarn/gateway-sync.keytab" in problem.message
    assert "zk_acl lets only tarn-gateway-sync/gw1@EXAMPLE.COM write its znodes" in problem.message


def test_stale_keys_and_clock_skew_say_what_to_fix():
    stale = login_problem(HOSTS, Login(error="Decrypt integrity check failed", error_code=-1765328353), [], ENV)
    skew = login_problem(HOSTS, Login(error="Clock skew too great", error_code=-1765328347), [], ENV)
    assert stale.fatal and stale.message.endswith("export the keytab again")
    assert skew.fatal and skew.message.endswith("sync the clock")


def test_an_unreachable_kdc_is_not_fatal():
    problem = login_problem(HOSTS, Login(error="Cannot contact any KDC for realm 'EXAMPLE.COM'",
                                         error_code=KDC_UNREACHABLE), sasl_writers(ACL), ENV)
    assert not problem.fatal and problem.message.endswith("retrying until the KDC answers")


def test_without_sasl_writers_in_the_acl_any_principal_will_do():
    assert login_problem(HOSTS, Login(principal="bob@EXAMPLE.COM"), [], ENV) is None
