"""The ``psc`` command line: one module per subcommand, registered in :mod:`psc.cli.main`."""
