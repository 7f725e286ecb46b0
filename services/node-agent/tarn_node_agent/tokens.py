"""The delegation tokens the node-agent stages with: YARN's token file, plus the fresher ones
tarn-am hands a new container in ``TARN_HDFS_DELEGATION_TOKENS`` (base64 of a token storage
file; a long-lived deployment outlives the tokens YARN first gave it, see docs/kerberos.md)."""
from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import List, Mapping

from tarn_shared.hadoop_tokens import (HDFS_TOKEN_KINDS, HadoopToken, parse_token_storage, read_vlong,  # noqa: F401 (re-exported)
                                       write_vlong)

from .errors import TokenFileError

AM_TOKENS_ENV = "TARN_HDFS_DELEGATION_TOKENS"


def container_tokens(environ: Mapping[str, str]) -> List[HadoopToken]:
    """Every token this container holds: YARN's file first, then tarn-am's."""
    tokens: List[HadoopToken] = []
    location = environ.get("HADOOP_TOKEN_FILE_LOCATION")
    if location:
        try:
            tokens += parse_token_storage(Path(location).read_bytes())
        except OSError as exc:
            raise TokenFileError(f"cannot read HADOOP_TOKEN_FILE_LOCATION {location}: {exc.strerror}") from None
    fresh = environ.get(AM_TOKENS_ENV)
    if fresh:
        try:
            data = base64.b64decode(fresh, validate=True)
        except (binascii.Error, ValueError):
            raise TokenFileError(f"{AM_TOKENS_ENV} is not base64 of a token storage file") from None
        tokens += parse_token_storage(data)
    return tokens
