"""A scenario's ``name`` made into one safe file-name component, for the default folder ``results/<name>``.

A name is free text in the contract, so it may hold path separators (``../../../tmp/x``), a NUL, control
characters, characters Windows refuses, or be thousands of characters long. :func:`safe_file_name` keeps
letters and marks (any script), digits and ``-_.+=@,()[]{}#~!$%&'`` and spaces, turns every other character into ``_``,
strips leading dots and spaces (no ``.``, ``..`` or hidden folder), and cuts the result to at most
:data:`MAX_NAME_BYTES` UTF-8 bytes, adding 8 hex digits of the name's SHA-256 when it cuts so that two long
names sharing a prefix stay apart. It depends on nothing else in dcsim, so the scenario schema can use it.
"""

from __future__ import annotations

import hashlib
import unicodedata

#: Longest file name produced, in UTF-8 bytes (file systems allow 255; room is left for suffixes).
MAX_NAME_BYTES = 100
#: What an empty or all-unsafe name becomes.
FALLBACK_NAME = "scenario"
_KEPT_PUNCTUATION = frozenset("-_.+=@,()[]{}#~!$%&' ")
# Device names Windows reserves in any folder, with or without an extension.
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"COM{i}" for i in range(1, 10)] + [f"LPT{i}" for i in range(1, 10)]
)


def _kept(char: str) -> bool:
    return char in _KEPT_PUNCTUATION or unicodedata.category(char)[0] in "LMN"


def _cut(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, never inside a character."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def safe_file_name(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """``name`` as one file-name component: no separator, NUL or control character, no leading dot, at most
    ``max_bytes`` UTF-8 bytes. A safe name is returned unchanged (``llama2-7b chat`` stays as it is)."""
    text = unicodedata.normalize("NFC", name)
    cleaned = "".join(char if _kept(char) else "_" for char in text).lstrip(". ").rstrip(". ")
    if not cleaned:
        cleaned = FALLBACK_NAME
    if cleaned.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        cleaned = "_" + cleaned
    if len(cleaned.encode("utf-8")) > max_bytes:
        digest = hashlib.sha256(name.encode("utf-8", errors="surrogatepass")).hexdigest()[:8]
        cleaned = _cut(cleaned, max_bytes - len(digest) - 1).rstrip(". ") + "-" + digest
    return cleaned
