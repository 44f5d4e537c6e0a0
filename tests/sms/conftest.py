from tests.engine.conftest import clock  # noqa: F401 (fixture)
