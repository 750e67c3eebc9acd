"""``python -m psc`` runs the command line."""

import sys

from psc.cli.main import main

sys.exit(main())
