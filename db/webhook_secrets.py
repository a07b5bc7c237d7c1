"""Webhook signing secrets at rest: each client's `whsec_` secret sealed under the master key.

Partner systems verify our signatures with the secret, so it must be readable to sign deliveries (a hash
would not do): it is encrypted with MasterKeys.wrap, bound to its client row, and a master-key rotation
re-wraps it (db/keyring.py).
"""

from __future__ import annotations

import base64
import secrets

from db.crypto import DecryptionFailed, MasterKeys


def webhook_secret_aad(client_id: str) -> str:
    """The associated data binding a sealed secret to its client row (db.crypto convention)."""
    return f"oauth_client.webhook_secret_enc:{client_id}"


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def seal_webhook_secret(master_keys: MasterKeys, *, client_id: str, secret: str) -> bytes:
    """What goes in oauth_client.webhook_secret_enc: MasterKeys.wrap of the whsec_ string's bytes."""
    return master_keys.wrap(secret.encode(), aad=webhook_secret_aad(client_id))[1]


def _open(master_keys: MasterKeys, client_id: str, sealed: bytes) -> tuple[str, str]:
    for key_id, _ in master_keys.keys:
        try:
            return key_id, master_keys.unwrap(key_id, bytes(sealed), aad=webhook_secret_aad(client_id)).decode()
        except DecryptionFailed:
            continue
    raise DecryptionFailed("webhook secret does not open with any master key")


def open_webhook_secret(master_keys: MasterKeys, *, client_id: str, sealed: bytes) -> str:
    """The column stores no key id, so try each master key (current first); rotation keeps working."""
    return _open(master_keys, client_id, sealed)[1]


def webhook_secret_key_id(master_keys: MasterKeys, *, client_id: str, sealed: bytes) -> str:
    """Which master key wraps a sealed secret, so a rotation can re-wrap only those not yet current."""
    return _open(master_keys, client_id, sealed)[0]
