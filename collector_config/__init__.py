"""Collector settings. The swarmlens distribution ships this directory as the package
``swarmlens.collector_config`` (see pyproject.toml), so that ``swarmlens up`` reads rotel.env from
an installed wheel exactly as from a checkout. Nothing here is code."""
