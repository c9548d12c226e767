"""OpenADR XML is screened before openleadr's schema-validating lxml parser ever sees it.

Why: one entity reference declared in a DTD (``<!DOCTYPE oadrPayload [<!ENTITY a "abc">]>`` and
``&a;`` in any element) makes lxml's parser built with openleadr's XML schema crash the whole
process with a segmentation fault (lxml 6.2.1, openleadr 0.5.36; reproduced here in
``der_assets_tests/dispatch_intake/test_openadr_hostile.py``). No exception handler can catch a
segfault, so nothing that parses with that parser may see such bytes.

``screen`` parses the bytes first with defusedxml (expat, which raises instead of crashing, and
refuses DTDs, entity declarations and external references), and ``install`` puts it in front
of openleadr's ``validate_xml_schema`` wherever openleadr calls it: the VEN (``OpenADRClient``,
on every VTN answer) and the VTN service (``OpenADRServer``, on every VEN request: the demo VTN
and any other in this process). A refused message raises lxml's ``XMLSyntaxError``, which
openleadr already handles as a message that failed validation: the VEN ignores it, the VTN
answers 400. OpenADR 2.0b messages never need a DTD: the schema defines them.
"""

from __future__ import annotations

import threading
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring

_installed = threading.Lock()
_original = None


def screen(content: bytes | str) -> str | None:
    """Why ``content`` may not reach lxml (a DTD, an entity, an external reference, not XML), or None."""
    if isinstance(content, str):
        content = content.encode("utf-8")
    try:
        defused_fromstring(content, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        return f"refused before validation: {type(exc).__name__} ({exc}); OpenADR messages carry no DTD or entities"
    except (ParseError, ValueError) as exc:
        return f"not well-formed XML ({exc})"
    return None


def validate_schema(content: bytes | str):
    """openleadr's schema validation (the tree), after ``screen``; ``XMLSyntaxError`` when refused."""
    from lxml.etree import XMLSyntaxError
    from openleadr import messaging

    reason = screen(content)
    if reason is not None:
        raise XMLSyntaxError(reason, 0, 0, 0)
    return (_original or messaging.validate_xml_schema)(content)


def install() -> None:
    """Put ``validate_schema`` in front of every openleadr caller of ``validate_xml_schema`` (idempotent)."""
    global _original
    from openleadr import client, messaging
    from openleadr.service import vtn_service

    with _installed:
        if _original is None:
            _original = messaging.validate_xml_schema
        for module in (messaging, client, vtn_service):
            module.validate_xml_schema = validate_schema
