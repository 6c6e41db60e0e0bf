"""Keeping credentials out of what fnctl prints and stores.

A git or template URL may carry them (`https://user:token@host/repo.git`); fnctl shows and
records such URLs only without their userinfo. A secret fnctl was handed (a registry password)
is `conceal`ed: every later message shows it as `***`.
"""

from __future__ import annotations

import re

# scheme://userinfo@ : greedy up to the netloc's last '@' (a raw '@' in a password still
# belongs to the userinfo, as urllib.parse reads it); the netloc ends at / ? # or a space.
_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#\s]*@")


MASK = "***"
_concealed: set[str] = set()


def conceal(secret: str) -> None:
    """From now on, `redact` masks `secret` wherever it appears."""
    if secret:
        _concealed.add(secret)


def redact(text: str) -> str:
    """`text` with the userinfo of every URL in it removed, and every concealed secret masked."""
    for secret in sorted(_concealed, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _USERINFO.sub(r"\1", text) if "@" in text else text
