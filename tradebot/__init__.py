"""tradebot core: domain types, money, policies, ports, config, journal catalog, CLI.

The core knows no venue and no actor: ``actors`` and ``adapters`` depend on it, never the
other way round (enforced by import-linter in ``nox -s lint``). Only :mod:`tradebot.cli`
wires concrete adapters and actors together.
"""

__version__ = "0.1.0"
