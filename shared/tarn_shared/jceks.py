"""Hadoop credential files (JCEKS, as ``hadoop credential create`` writes them) decoded: one
parser for `tarn submit`'s check and the node-agent, and one rule for the store password.
Values go nowhere else: not a log, an event or an error. Pure: bytes in, aliases out.
"""
from __future__ import annotations

from typing import Dict, Mapping

import jks

from .errors import TarnError

# Hadoop's default keystore password (JavaKeyStoreProvider), unless the environment sets one.
DEFAULT_STORE_PASSWORD = "none"
PASSWORD_ENV = "HADOOP_CREDSTORE_PASSWORD"


class CredentialFileError(TarnError):
    """The credential file cannot be read; never carries a secret value."""


class StorePasswordError(CredentialFileError):
    """The file's integrity check fails with this password: the wrong one, or a damaged file."""


def store_password(environ: Mapping[str, str]) -> str:
    """The password Hadoop's own tools would use in this environment."""
    value = environ.get(PASSWORD_ENV)
    return value if value else DEFAULT_STORE_PASSWORD


def decode_keystore(data: bytes, password: str, where: str) -> Dict[str, str]:
    """alias -> value of every secret key entry; CredentialFileError on a wrong password or a
    corrupt file."""
    try:
        store = jks.KeyStore.loads(data, password, try_decrypt_keys=True)
    except jks.KeystoreSignatureException:
        raise StorePasswordError(f"cannot open credential file {where}: wrong store password "
                                  f"(set {PASSWORD_ENV}) or a damaged file") from None
    except Exception as exc:  # pyjks raises plain errors (struct.error, IndexError, ...) on bad input
        raise CredentialFileError(f"credential file {where} is not a readable JCEKS keystore "
                                  f"({type(exc).__name__})") from None
    if store.store_type != "jceks":
        raise CredentialFileError(f"credential file {where} is a {store.store_type} keystore, not JCEKS")
    values = {}
    for alias, entry in store.secret_keys.items():
        try:
            if not entry.is_decrypted():
                entry.decrypt(password)
            values[alias] = bytes(entry.key).decode("utf-8")
        except Exception as exc:  # noqa: BLE001 - the message must not carry key material
            raise CredentialFileError(f"cannot decrypt alias {alias!r} of {where} "
                                      f"({type(exc).__name__})") from None
    return values
