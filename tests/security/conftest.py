"""Fixtures shared by the security tests: ``gateways`` (HAProxy and Knox in front of one
tritonserver) and ``acl_redis`` (a Redis with TARN's ACL users)."""
from tests.security.gateways import gateways  # noqa: F401
from tests.security.redis_acl import acl_redis  # noqa: F401
