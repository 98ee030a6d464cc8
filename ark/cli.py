"""ark: the site admin's command line.

Each subcommand is one function that adds its parser to SUBCOMMANDS' subparsers and sets `run`,
the function that carries it out; a bad input raises ArkError, shown as one line, exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .bundle import add_bundle
from .check import add_check
from .deploy import add_deploy
from .errors import ArkError, InventoryError
from .inventory import Inventory, load_inventory
from .pillar import pillar_tree, write_pillar
from .pki import SITE_CA_DAYS, CaError, CaPem, CertKey, new_site_ca, read_ca
from .render import FALLBACK_SALT_CALL, check_render, find_salt_call

# The repository checkout this ark runs from, which holds the Salt tree (salt/) beside ark/.
CHECKOUT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ArkError, OSError) as e:
        print(f"ark: {e}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ark", description="Set up and run an ARK site: an ARC compute element "
                                                             "with Kubernetes as its batch system, installed by Salt.")
    subcommands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(subcommands)
    return parser


def add_init(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "init", help="write the site's Salt pillar from its inventory",
        description="Check the site inventory and write the Salt pillar of every host from it: top.sls, site.sls "
                    "(what all hosts share, with the site CA) and hosts/NAME.sls. The site CA is the inventory's "
                    "site.ca, else the one an earlier run made (kept in OUT/ca), else a new one. The pillar is "
                    "checked by Salt's own render of each host's states when salt-call is found, and written only "
                    "if every check passes; OUT is replaced whole, so edit the inventory, not the output.",
        epilog="Every inventory key is documented in ark/examples/inventory.yaml.",
    )
    parser.add_argument("inventory", type=Path, metavar="INVENTORY", help="the site inventory (YAML)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where the pillar goes (default: pillar/ beside the inventory); made 0700, "
                             "the files 0600, as they hold the CA key and the registry passwords")
    parser.add_argument("--salt-dir", type=Path, metavar="DIR", default=CHECKOUT / "salt",
                        help="the ARK Salt tree (salt/ of the repository): its ark/defaults.yaml fills in what "
                             "the site leaves out, and the pillar is checked against its states "
                             "(default: salt/ of the checkout ark runs from, %(default)s)")
    parser.add_argument("--salt-call", type=Path, metavar="PATH",
                        help=f"salt-call for the render check (default: salt-call on PATH, else {FALLBACK_SALT_CALL}; "
                             "with neither, the check is skipped with a note)")
    parser.set_defaults(run=run_init)


def run_init(args: argparse.Namespace) -> None:
    out = args.out or args.inventory.parent / "pillar"
    inventory = load_inventory(args.inventory, args.salt_dir)
    say(f"inventory {args.inventory}: " + ", ".join(f"{h.name} ({', '.join(h.roles)})" for h in inventory.hosts))
    if args.salt_call and not args.salt_call.exists():
        raise ArkError(f"--salt-call {args.salt_call} does not exist")
    salt_call = args.salt_call or find_salt_call()
    ca, keep, origin = site_ca(inventory, out)
    say(f"site CA: {origin}")
    hosts = [h.name for h in inventory.hosts]
    check = None
    if salt_call is None:
        say(f"note: no salt-call (not on PATH, not {FALLBACK_SALT_CALL}): the pillar is checked by ark's own "
            "rules only, not by Salt's render of the states; install Salt or give --salt-call")
    else:
        check = salt_check(salt_call, hosts, args.salt_dir)
    tree = pillar_tree(inventory, ca)
    write_pillar(out, tree, ca if keep else None, check)
    shared = ", ".join(name for name in tree if not name.startswith("hosts/"))
    say(f"pillar written to {out}: {shared}, hosts/{{{','.join(hosts)}}}.sls")


def salt_check(salt_call: Path, hosts: list[str], salt_dir: Path) -> Callable[[Path], None]:
    def check(stage: Path) -> None:
        say(f"rendering each host's states with {salt_call} ...")
        check_render(stage, hosts, salt_dir, salt_call)
        say("Salt renders every host's states")

    return check


def site_ca(inventory: Inventory, out: Path) -> tuple[CaPem, bool, str]:
    """The site CA: the inventory's own, else the one ark init made on an earlier run (kept in
    out/ca), else a new one. Returns it, whether ark init keeps it in out/ca, and what was done."""
    kept_files = CertKey(out / "ca" / "ca.crt", out / "ca" / "ca.key")
    kept = None
    if kept_files.cert.exists() or kept_files.key.exists():
        try:
            kept = read_ca(kept_files)
        except (CaError, OSError) as e:
            raise ArkError(f"the site CA ark init keeps in {out / 'ca'}: {e}") from None
    if inventory.ca:
        named = read_ca(inventory.ca)
        if kept and kept.cert != named.cert:
            # Every certificate on the hosts chains to the kept CA: a switch is for the admin to make.
            raise InventoryError("site.ca", f"{out / 'ca'} holds the site CA an earlier ark init made, which the "
                                            f"site's hosts trust: to change the site CA, remove {out / 'ca'} first")
        return named, kept is not None, f"site.ca of the inventory ({inventory.ca.cert})"
    if kept:
        return kept, True, f"the one made before, kept in {out / 'ca'}"
    return new_site_ca(), True, f"made, valid {SITE_CA_DAYS // 365} years, kept in {out / 'ca'} for the next run"


def say(line: str) -> None:
    print(f"==> {line}", flush=True)


SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (add_init, add_bundle, add_deploy, add_check)
