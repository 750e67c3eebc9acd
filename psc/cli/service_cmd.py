"""``psc init DIR`` and ``psc serve ROLE --config FILE``: a loopback deployment of processes.

``init`` writes a deployment's configs and keys (:mod:`psc.service.deploy`); ``serve``
runs one party from them behind its HTTP API (:mod:`psc.service.serve`) until SIGTERM or
Ctrl-C.  Refused input (a non-empty DIR, a config with an unknown key, a missing key file,
a port in use) exits 2 with what to do next.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from psc.cli.argtypes import int_at_least
from psc.service.config import ROLES


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "init", help="write a loopback deployment's configs and keys into a new directory"
    )
    p.add_argument("dir", help="a new (or empty) directory")
    p.add_argument("--subjects", type=int_at_least(1), default=200, help="subjects enrolled")
    p.add_argument(
        "--catalog", default="city", help="a catalog TOML file or a built-in name (city)"
    )
    p.add_argument(
        "--key-bits",
        type=int_at_least(512),
        default=2048,
        help="Paillier key size (2048 here; 3072 is the secure default)",
    )
    p.add_argument(
        "--committee",
        nargs=2,
        type=int_at_least(1, high=64),
        metavar=("K", "N"),
        default=None,
        help="reveal through a k-of-n key committee (a dealt threshold key; member-<i>.toml "
        "for each member) instead of one trusted key holder",
    )
    p.add_argument(
        "--grading-authority",
        action="store_true",
        help="also write the CKKS grading authority (grading_authority.toml; new CKKS keys, "
        "several hundred MB at the city catalog's parameters)",
    )
    p.set_defaults(func=run_init)

    s: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run one party of a deployment behind its HTTP API"
    )
    s.add_argument(
        "role",
        choices=ROLES,
        help="the party to run",
    )
    s.add_argument("--config", required=True, help="the party's TOML file from psc init")
    s.add_argument(
        "--port",
        type=int_at_least(0, high=65535),
        default=None,
        help="override the config's port (0: a free one)",
    )
    s.add_argument(
        "--peer",
        action="append",
        default=[],
        type=peer_arg,
        metavar="NAME=URL",
        help="a peer this party calls, e.g. aggregator=http://127.0.0.1:8001 or "
        "member-2=http://127.0.0.1:8003 (repeat; agencies and the key holder need them; the "
        "rights office: aggregator, registry, key-holder and every agency by its id)",
    )
    s.add_argument(
        "--log-url",
        default=None,
        metavar="URL",
        help="members and the key holder: the aggregator's base URL; the party reads the "
        "public log over HTTP into a verified replica (overrides the config's log)",
    )
    s.add_argument("--ready-file", default=None, help=argparse.SUPPRESS)
    s.add_argument("--watch-parent", type=int, default=None, help=argparse.SUPPRESS)
    s.set_defaults(func=run_serve)


def run_init(args: argparse.Namespace) -> int:
    from psc.exceptions import ServiceConfigError
    from psc.service.deploy import init_deployment

    committee = None
    if args.committee is not None:
        from psc.hazmat.paillier import MIN_KEY_BITS
        from psc.hazmat.threshold.dealer import deal

        k, n = args.committee
        if k > n:
            raise ServiceConfigError(f"--committee {k} {n}: K must be at most N")
        committee = deal(k, n, bits=args.key_bits, allow_insecure=args.key_bits < MIN_KEY_BITS)
    root = init_deployment(
        args.dir,
        catalog=args.catalog,
        subjects=args.subjects,
        key_bits=args.key_bits,
        committee=committee,
    )
    if args.grading_authority:
        from psc.service.he_deploy import write_grading_authority

        write_grading_authority(root)
    print(f"psc init: deployment written to {root}; start the parties with")
    print(f"  psc serve aggregator --config {root / 'aggregator.toml'}   (note its port)")
    print(f"  psc serve registry --config {root / 'registry.toml'}")
    print(f"  psc serve agency --config {root / 'agencies'}/<id>.toml --peer aggregator=URL")
    print(f"  psc serve key-holder --config {root / 'key_holder.toml'} --peer aggregator=URL")
    print(f"  psc serve rights-office --config {root / 'rights_office.toml'} --peer NAME=URL ...")
    if committee is not None:
        print(f"  psc serve member --config {root}/member-<i>.toml --log-url AGGREGATOR-URL")
        print("  (and the key holder with --peer member-<i>=URL for each member)")
    if args.grading_authority:
        print(f"  psc serve grading-authority --config {root / 'grading_authority.toml'}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from psc.exceptions import ServiceConfigError
    from psc.service.config import load_config
    from psc.service.serve import serve

    cfg = load_config(args.config)
    if cfg.role != args.role:
        raise ServiceConfigError(f"{args.config} configures {cfg.role!r}, not {args.role!r}")
    serve(
        cfg,
        port=args.port,
        ready_file=args.ready_file,
        watch_parent=args.watch_parent,
        peers=dict(args.peer),
        log_url=args.log_url,
    )
    return 0


def peer_arg(text: str) -> tuple[str, str]:
    """``NAME=URL`` with a known peer name and an http(s) URL."""
    name, sep, url = text.partition("=")
    # aggregator, registry, key-holder, member-<i>, or an agency's id (registered names)
    if not sep or not re.fullmatch(r"[a-z0-9][a-z0-9._#:-]{0,127}", name):
        raise argparse.ArgumentTypeError(
            f"{text!r}: write NAME=URL with NAME aggregator, registry, key-holder, member-<i> "
            "or an agency's id"
        )
    if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(:[0-9]{1,5})?/?", url):
        raise argparse.ArgumentTypeError(f"{text!r}: the URL must look like http://127.0.0.1:8001")
    return name, url
