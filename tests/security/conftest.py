from tests.security.redis_acl import acl_redis  # noqa: F401  (the fixture, for every file here)
