"""The node-agent's own error types; each adapter translates library errors into these once."""
from __future__ import annotations

from tarn_shared.errors import TarnError
from tarn_shared.hadoop_tokens import TokenFileError as _TokenFileError
from tarn_shared.jceks import CredentialFileError
from tarn_shared.repository_layout import RepositoryError

# The repository and credential-file rules live in tarn_shared (`tarn submit` checks with
# them too) and raise these types: staging failures are of the same family.
StagingError = RepositoryError
SecretsError = CredentialFileError


class RepositoryNotFound(StagingError):
    pass


class RepositoryPermissionDenied(StagingError):
    pass


class DiskFull(StagingError):
    pass


class ChecksumMismatch(StagingError):
    pass


class TritonError(TarnError):
    """tritonserver could not be started, reached or commanded."""


# A token file (HADOOP_TOKEN_FILE_LOCATION, or tarn-am's) that cannot be read: the shared parser's type.
TokenFileError = _TokenFileError
