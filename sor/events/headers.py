"""CloudEvent attribute values in HTTP headers, decoded as the HTTP protocol binding says.

Binding 3.1.3.2: "any HTTP header value MUST first be unescaped with respect to double-quoted
strings, as described in RFC7230, section 3.2.6. A single round of percent-decoding MUST then be
performed"; "values that have been unnecessarily percent-encoded MUST be accepted, but encoded
byte sequences which are invalid in UTF-8 MUST be rejected"; "decoding MUST accept lower-case
values". Pure functions: a malformed value raises EventMappingError naming the attribute.
"""

from __future__ import annotations

from sor.errors import EventMappingError

_HEX = frozenset("0123456789abcdefABCDEF")


def attribute_value(raw: str, attribute: str, where: str) -> str:
    """The value of attribute ``attribute`` carried by a ``ce-`` header whose value is ``raw``."""
    text = raw.strip(" \t")  # RFC 7230 3.2: optional whitespace around the field value
    if '"' in text:
        text = _unquote(text, attribute, where)
    if "%" in text:
        text = _percent_decode(text, attribute, where)
    return text


def _bad(where: str, attribute: str, reason: str) -> EventMappingError:
    return EventMappingError(
        f"{where}: header 'ce-{attribute}': {reason}", attribute=attribute, reason=reason
    )


def _unquote(text: str, attribute: str, where: str) -> str:
    """RFC 7230 3.2.6: each quoted-string becomes its content, quoted-pairs (``\\x``) become x."""
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if quoted and c == "\\":
            if i + 1 == len(text):
                raise _bad(where, attribute, "a backslash ends the quoted string")
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        else:
            out.append(c)
        i += 1
    if quoted:
        raise _bad(where, attribute, "unterminated quoted string")
    return "".join(out)


def _percent_decode(text: str, attribute: str, where: str) -> str:
    """One round of percent-decoding, then strict UTF-8 (overlong forms such as %C0%A0 fail)."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "%":
            out += c.encode("utf-8", "surrogatepass")
            i += 1
            continue
        pair = text[i + 1 : i + 3]
        if len(pair) != 2 or not (pair[0] in _HEX and pair[1] in _HEX):
            raise _bad(where, attribute, f"'%' not followed by two hex digits at {i}")
        out.append(int(pair, 16))
        i += 3
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(where, attribute, "percent-encoded bytes are not valid UTF-8") from None
