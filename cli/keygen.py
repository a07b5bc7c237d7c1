"""`pamoja keys generate`: fresh PAMOJA_MASTER_KEYS and PAMOJA_BLIND_INDEX_KEY values for an env file.

In exactly the form config/settings.py and db/crypto.py read: 32 random bytes each, base64url, the master
key behind its id. Printed as unquoted KEY=value lines (base64url has no character a shell, Docker's
env files or python-dotenv treat specially). It reads no configuration and opens no database, so it is
how the first production secrets are made, before anything else is set.
"""

from __future__ import annotations

import argparse
import base64
import re
import secrets
from typing import Any

from cli.context import CommandError, emit

KEY_BYTES = 32
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")


def register_generate(keys: Any) -> None:
    """`pamoja keys generate`, registered inside the `keys` group that cli/oauth.py creates."""
    generate = keys.add_parser(
        "generate", help="Print fresh PAMOJA_MASTER_KEYS and PAMOJA_BLIND_INDEX_KEY lines for an env file; "
                         "nothing is stored.")
    generate.add_argument("--key-id", default="k1",
                          help="Id of the new master key (default k1; a rotation needs a new one, e.g. k2).")
    generate.add_argument("--json", action="store_true")
    generate.set_defaults(handler=_generate)


def fresh_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def _generate(args: argparse.Namespace) -> int:
    if not KEY_ID.fullmatch(args.key_id):
        raise CommandError("--key-id must be 1 to 32 letters, digits, '.', '_' or '-' "
                           "(it stands before a ':' in a comma-separated PAMOJA_MASTER_KEYS)")
    keys = {"PAMOJA_MASTER_KEYS": f"{args.key_id}:{fresh_key()}", "PAMOJA_BLIND_INDEX_KEY": fresh_key()}
    human = "\n".join([
        "# Fresh Pamoja keys: store them as secrets, never in git; losing them loses the data they protect.",
        "# PAMOJA_BLIND_INDEX_KEY cannot be rotated: keep the one a database was started with. To rotate the",
        "# master key, put this entry first in PAMOJA_MASTER_KEYS (keep the old ones after it), restart, then",
        "# run `pamoja keys rotate-master --retire OLD_ID`.",
        *(f"{name}={value}" for name, value in keys.items()),
    ])
    emit(keys, as_json=args.json, human=human)
    return 0
