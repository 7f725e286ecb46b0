"""The node-agent's own error types; each adapter translates library errors into these once."""
from __future__ import annotations

from tarn_shared.errors import TarnError, UnavailableError  # noqa: F401 (re-exported)


class StagingError(TarnError):
    """The model repository could not be staged; the message says why and where."""


class RepositoryNotFound(StagingError):
    pass


class RepositoryPermissionDenied(StagingError):
    pass


class DiskFull(StagingError):
    pass


class ChecksumMismatch(StagingError):
    pass


class LayoutError(StagingError):
    """The repository is not a Triton model repository."""


class SecretsError(TarnError):
    """The credential file cannot be read; never carries a secret value."""


class TritonError(TarnError):
    """tritonserver could not be started, reached or commanded."""


class TokenFileError(TarnError):
    """HADOOP_TOKEN_FILE_LOCATION does not hold a readable token storage file."""
