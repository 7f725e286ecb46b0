"""The gateways fixture (HAProxy and Knox in front of one tritonserver), shared by the security tests."""
from tests.security.gateways import gateways  # noqa: F401
