"""Settings of the throw-away worker the kill test starts: the project's settings, with the built-in connector
replaced by :class:`tests.investigations.fake_connectors.SlowConnector`."""

from soc_console import settings as _base

globals().update({name: value for name, value in vars(_base).items() if name.isupper()})

CONNECTOR_KINDS = {"builtin": "tests.investigations.fake_connectors.SlowConnector"}
