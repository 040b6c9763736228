"""Give an existing identity a web account, for ``ehrchain demo`` and node operators.

The consortium admin and the validator are created by ``node init`` as
keystores on disk; this lets them sign in through the browser too. The
account's keystore is sealed under ``password`` like any other.
"""

from __future__ import annotations

import time

from ehrchain.crypto.keystore import Identity
from ehrchain.web.accounts import Account, AccountStore
from ehrchain.web.settings import WebSettings


def add_web_account(
    settings: WebSettings,
    username: str,
    password: str,
    identity: Identity,
    display_name: str,
    *,
    hospital: str = "",
    must_change: bool = False,
) -> Account:
    """Create the account unless the username exists already; return it either way."""
    store = AccountStore(settings.accounts_path, settings.password_cost, settings.keystore_kdf)
    try:
        found = store.get(username)
        if found is not None:
            return found
        return store.create(
            username,
            password,
            identity,
            display_name=display_name,
            hospital=hospital,
            must_change=must_change,
            now_ms=time.time_ns() // 1_000_000,
        )
    finally:
        store.close()
