"""Reading report XML that may be hostile or broken.

Untrusted XML is parsed with defusedxml: a document type declaration, an entity declaration
or an external reference refuses the document (XML bombs, external entities). Only then, for
a document that is merely not well-formed (real reports often are: an unescaped `<` in a
field, a stray unclosed element), a lenient reader of our own recovers the elements as
well as it can: it knows tags, text, the five predefined entities and character references,
and nothing else, so it cannot be made to fetch or expand anything.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import defusedxml
import defusedxml.ElementTree as SafeET

__all__ = ["UnsafeXML", "XMLError", "parse_xml"]

MAX_ELEMENTS = 5_000_000


class XMLError(ValueError):
    """The bytes are not XML we can read."""


class UnsafeXML(XMLError):
    """The XML declares a document type or entities (XML bombs, external entities)."""


_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.I)
_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
_NAME = r"[A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?"
_TOKEN = re.compile(
    rf"<!--.*?(?:-->|\Z)|<!\[CDATA\[(?P<cdata>.*?)(?:\]\]>|\Z)|<\?.*?(?:\?>|\Z)"
    rf"|</(?P<close>{_NAME})\s*>"
    rf"|<(?P<open>{_NAME})(?P<attrs>(?:\s+{_NAME}\s*=\s*(?:\"[^\"<]*\"|'[^'<]*'))*)\s*(?P<empty>/?)>",
    re.S,
)
_ATTR = re.compile(rf"({_NAME})\s*=\s*(?:\"([^\"<]*)\"|'([^'<]*)')")
_ENTITY = re.compile(r"&(?:(amp|lt|gt|quot|apos)|#([0-9]{1,7})|#[xX]([0-9A-Fa-f]{1,6}));")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def _entity(match: re.Match[str]) -> str:
    if match.group(1):
        return _NAMED[match.group(1)]
    code = int(match.group(2)) if match.group(2) else int(match.group(3), 16)
    return chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else "\ufffd"


def _unescape(text: str) -> str:
    return _ENTITY.sub(_entity, text) if "&" in text else text


def decode(data: bytes) -> str:
    """The document as text: its declared encoding (UTF-8 by default); bytes that are not
    of that encoding become U+FFFD instead of failing the whole report."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    match = _ENCODING.match(data[:200])
    encoding = match.group(1).decode("ascii").lower() if match else "utf-8"
    try:
        text = data.decode(encoding, "replace")
    except LookupError:
        text = data.decode("utf-8", "replace")
    return _XML_DECL.sub("", text, count=1)


def _lenient(text: str) -> ET.Element:
    """Elements recovered from XML that is not well-formed."""
    root = ET.Element("#document")
    stack = [root]
    position = 0
    last: ET.Element | None = None  # the element whose tail gets the next text
    count = 0

    def add_text(chunk: str) -> None:
        if not chunk:
            return
        if last is None:
            stack[-1].text = (stack[-1].text or "") + chunk
        else:
            last.tail = (last.tail or "") + chunk

    for match in _TOKEN.finditer(text):
        add_text(_unescape(text[position : match.start()]))
        position = match.end()
        if match.group("cdata") is not None:
            add_text(match.group("cdata"))
        elif match.group("close"):
            name = match.group("close")
            for depth in range(len(stack) - 1, 0, -1):
                if stack[depth].tag == name:  # close it and whatever was left open inside
                    last = stack[depth]
                    del stack[depth:]
                    break
        elif match.group("open"):
            count += 1
            if count > MAX_ELEMENTS:
                raise XMLError(f"more than {MAX_ELEMENTS} elements")
            attrs = {
                m.group(1): _unescape(m.group(2) if m.group(2) is not None else m.group(3))
                for m in _ATTR.finditer(match.group("attrs") or "")
            }
            element = ET.SubElement(stack[-1], match.group("open"), attrs)
            last = None
            if match.group("empty"):
                last = element
            else:
                stack.append(element)
    add_text(_unescape(text[position:]))
    return root


_FORBIDDEN = (
    defusedxml.DTDForbidden,
    defusedxml.EntitiesForbidden,
    defusedxml.ExternalReferenceForbidden,
    defusedxml.NotSupportedError,
)


def parse_xml(data: bytes) -> tuple[ET.Element, bool]:
    """The root element, and whether it took the lenient reader to get it.
    UnsafeXML for declarations (never read further); XMLError when nothing is there."""
    if _DECLARATION.search(data):
        raise UnsafeXML("XML with a document type or entity declaration is refused (XML bomb?)")
    text = decode(data)
    if not text.strip():
        raise XMLError("empty document")
    try:
        return SafeET.fromstring(text, forbid_dtd=True), False
    except _FORBIDDEN as exc:
        raise UnsafeXML(f"unsafe XML refused: {type(exc).__name__}") from None
    except ET.ParseError:
        pass
    root = _lenient(text)
    if len(root) == 0:
        raise XMLError("not XML: no element found")
    return (root[0] if len(root) == 1 else root), True
