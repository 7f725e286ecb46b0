"""Fixtures shared by every test folder; each plugin starts its servers lazily, so unit
tests start none."""
pytest_plugins = [
    "tests.support.stack_fixture",
    "tests.support.triton_fixture",
    "tests.hadoop.cluster",
]
