"""`tarn submit --principal P --keytab K` on a Kerberized cluster ships the keytab to the AM
(only the master's files, in the submitter's private staging directory, as Spark's --keytab
does), so that tarn-am can re-obtain the HDFS delegation tokens new containers need once the
first ones reach their max lifetime (tarn_am.token_keeper, docs/kerberos.md)."""
from __future__ import annotations

from typing import Mapping

import skein

from tarn_shared.hadoop_conf import kerberos_enabled, read_hadoop_conf

from .kerberos_login import KeytabLogin

KEYTAB_FILE = "tarn-am.keytab"
KRB5_CONF_FILE = "tarn-krb5.conf"


def ship_keytab(spec: skein.ApplicationSpec, login: KeytabLogin, environ: Mapping[str, str]) -> bool:
    """Adds the keytab (and the submitter's own krb5.conf, when KRB5_CONFIG names one: the
    nodes' /etc/krb5.conf is used otherwise) to the master; False on a cluster without Kerberos."""
    if not kerberos_enabled(read_hadoop_conf(environ.get("HADOOP_CONF_DIR"))):
        return False
    spec.master.files[KEYTAB_FILE] = skein.File(login.keytab)
    spec.master.env.update({"TARN_AM_KERBEROS_PRINCIPAL": login.principal, "TARN_AM_KERBEROS_KEYTAB": KEYTAB_FILE,
                            "TARN_AM_TOKEN_FILE_SYSTEMS": ",".join(spec.file_systems)})
    ship_krb5_conf(spec.master, environ)
    return True


def ship_krb5_conf(master: skein.Master, environ: Mapping[str, str]) -> None:
    """The submitter's krb5.conf (KRB5_CONFIG) to the master; the nodes' /etc/krb5.conf otherwise."""
    if environ.get("KRB5_CONFIG"):
        master.files[KRB5_CONF_FILE] = skein.File(environ["KRB5_CONFIG"])
        master.env["KRB5_CONFIG"] = KRB5_CONF_FILE  # relative: tarn-am runs in its container's directory
