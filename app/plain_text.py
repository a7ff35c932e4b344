"""Record values as literal text inside Markdown; imports nothing of the portal, so every module may use it."""

from __future__ import annotations

import re
from typing import Any

_MARKDOWN_ACTIVE = re.compile(r"""([\\`*_{}\[\]()#+\-.!|<>~:$&@^=])""")


def plain(value: Any) -> str:
    """A data value as literal text inside Markdown (headers, captions, metrics, messages, st.table cells).

    Record values are typed by people and imported from other systems: a customer named
    `![x](https://evil.example/p.png)` or `[pay here](javascript:...)` must show those characters, not an
    image or a link, and a typed URL or e-mail address must not become clickable. Line breaks become
    spaces (they could start a new Markdown block).
    """
    if value is None:
        return "–"
    return _MARKDOWN_ACTIVE.sub(r"\\\1", " ".join(str(value).split()))
