"""Keeping credentials out of what fnctl prints and stores.

A git or template URL may carry them (`https://user:token@host/repo.git`); fnctl shows and
records such URLs only without their userinfo.
"""

from __future__ import annotations

import re

# scheme://userinfo@ : greedy up to the netloc's last '@' (a raw '@' in a password still
# belongs to the userinfo, as urllib.parse reads it); the netloc ends at / ? # or a space.
_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#\s]*@")


def redact(text: str) -> str:
    """`text` with the userinfo of every URL in it removed."""
    return _USERINFO.sub(r"\1", text) if "@" in text else text
