"""Built-in example catalogs (``city``, ``company``); load them with ``psc.catalog.load_catalog("city")``."""
