"""The served rights office's grant, killed with SIGKILL at a commit boundary.

``python rights_office_child.py CONFIG BOUNDARY REQUEST_ID PEERS_JSON``: open the rights
office from its files exactly as ``psc serve rights-office`` does (its peers are the
running parties' processes, ``PEERS_JSON`` maps names to URLs), then grant the open
correction ``REQUEST_ID`` (what ``POST /v1/rights/grants`` runs), killing this process
with SIGKILL when the office passes ``BOUNDARY`` (``intent``, ``ledger``, ``agency``,
``links``).  Exits 3 if the boundary was never passed.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from psc.service.config import load_config
from psc.service.rights_desks import open_rights_office


def main(argv: list[str]) -> int:
    config, boundary, request_id, peers = argv
    office = open_rights_office(load_config(config), json.loads(peers))

    def crash(name: str) -> None:
        if name == boundary:
            os.kill(os.getpid(), signal.SIGKILL)

    office.on_boundary = crash
    office.grant_correction(int(request_id))
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
