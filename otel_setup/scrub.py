"""PII scrubbing for everything that leaves the process: Sentry events, breadcrumbs, span
attributes and span events (exception messages and stack traces), log records.

What is removed and why:
- Card numbers (13-19 digits passing the Luhn check, spaces or dashes allowed, also URL-encoded
  as ``+`` or ``%20``) keep the BIN and the last four digits only (PCI DSS 3.4 allows showing at
  most those).
- Values of sensitive keys (CVV, passwords, tokens, ``Authorization``, cookies, secrets) are
  replaced, whether the key is a mapping key or appears in a string (``cvv=123``,
  ``"password": "..."``) such as a raw request body in a frame's local variables.
- JWTs, bearer tokens and password hashes (argon2, bcrypt, pbkdf2, scrypt: a database error
  quotes them with its statement's parameters) anywhere in text are replaced.
- E-mail addresses, also URL-encoded (``%40``, as in query strings and access log lines), keep
  their first character and domain (``j***@example.com``); the domain is a fraud signal
  (disposable providers), the local part identifies a person.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

FILTERED = "[Filtered]"
_MAX_DEPTH = 12

# Key names whose values are never sent. Sources: sentry-python's DEFAULT_DENYLIST (passwords,
# tokens, cookies, auth headers), PCI DSS (CVV/CVC, PAN) and the shop's own payment fields.
_DENY_KEYS = frozenset(
    {
        "password", "passwd", "pwd", "secret", "passwordconfirm", "newpassword", "oldpassword",
        "cvv", "cvc", "cvv2", "cvc2", "securitycode", "cardsecuritycode",
        "token", "accesstoken", "refreshtoken", "idtoken", "apikey", "xapikey", "privatekey",
        "authorization", "proxyauthorization", "cookie", "setcookie", "session", "sessionid",
        "csrftoken", "xcsrftoken", "xsentryauth", "jwt", "otp",
        "cardnumber", "pan", "cardexpiry", "expiry", "expirydate", "exp",
    }
)
_KEY_WORDS = (
    "password|passwd|pwd|secret|cvv2?|cvc2?|security_code|token|access_token|refresh_token|"
    "api[_-]?key|authorization|cookie|card[_-]?number|card_expiry|expiry|jwt|otp"
)
# key: value inside text, quoted value (may contain spaces)...
_KV_QUOTED = re.compile(
    rf"(?i)((?:{_KEY_WORDS})\\?[\"']?\s*[:=]\s*\\?)([\"'])(.*?)(\\?\2)"
)
# ...or bare value up to a delimiter (query strings, form bodies, log lines).
_KV_BARE = re.compile(
    rf"(?i)((?:{_KEY_WORDS})\s*[:=]\s*)((?:bearer|basic)\s+)?([^\s\"'\\,&;}}\]]+)"
)
_CARD_SEPARATOR = r"[ +-]|%20"
_CARD = re.compile(rf"(?<![\w.])(?:\d(?:{_CARD_SEPARATOR})?){{12,18}}\d(?![\w])")
_EMAIL = re.compile(
    r"(?<![\w.+-])([A-Za-z0-9])[A-Za-z0-9._%+-]*(?:@|%40)([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
)
_PASSWORD_HASH = re.compile(r"\$(?:argon2(?:id|i|d)|2[abxy]|pbkdf2(?:-sha\d+)?|scrypt)\$[\w$=,+/.-]+")
_JWT = re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[\w\-.~+/]{8,}=*")
# Cheap gates, one per family of rules, so that a string runs only the patterns it could match:
# the key-word rules need a key word, JWTs "eyJ", hashes "$", e-mails "@" (or "%40"). Each gate
# is checked on the text as it came in; a replacement only ever removes what a gate looks for.
# URLs, hosts, routes, ids and SQL statements run two scans instead of seven.
_KEYISH = re.compile(rf"{_KEY_WORDS}|bearer|basic", re.IGNORECASE)
# Short values (addresses, routes, decisions, status words) repeat on every span: their scrubbed
# form is remembered. Unique ones (transaction ids) pass through the LRU without harm.
_MEMO_MAX_CHARS = 64


def _normal_key(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "").replace(".", "")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def mask_card(digits: str) -> str:
    """``4111111111111111`` -> ``411111******1111`` (BIN + last 4)."""
    return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"


def _card_sub(match: re.Match[str]) -> str:
    digits = re.sub(_CARD_SEPARATOR, "", match.group(0))
    if 13 <= len(digits) <= 19 and luhn_ok(digits):
        return mask_card(digits)
    return match.group(0)


def scrub_text(text: str) -> str:
    """Mask every PII pattern in free text."""
    if not text:
        return text
    if len(text) <= _MEMO_MAX_CHARS:
        return _scrub_short(text)
    return _scrub(text)


@lru_cache(maxsize=4096)
def _scrub_short(text: str) -> str:
    return _scrub(text)


def _scrub(text: str) -> str:
    keyish = _KEYISH.search(text) is not None
    if keyish:
        text = _KV_QUOTED.sub(lambda m: f"{m.group(1)}{m.group(2)}{FILTERED}{m.group(4)}", text)
        text = _KV_BARE.sub(lambda m: f"{m.group(1)}{FILTERED}", text)
    if "eyJ" in text:
        text = _JWT.sub(FILTERED, text)
    if "$" in text:
        text = _PASSWORD_HASH.sub(FILTERED, text)
    if keyish:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {FILTERED}", text)
    text = _CARD.sub(_card_sub, text)
    if "@" in text or "%40" in text:
        text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return text


@lru_cache(maxsize=2048)
def is_sensitive_key(key: str) -> bool:
    # Remembered: attribute and field names are the same few dozen strings on every span and
    # event, and this runs for each of them on the export thread.
    normal = _normal_key(key)
    # "password" anywhere: password_hash, hashed_password, password_confirmation...
    return (normal in _DENY_KEYS or "password" in normal
            or normal.endswith(("token", "secret", "cvv", "cvc")))


# Values that are returned as they are: checked first, since the Mapping check below is an ABC
# check (span attributes are numbers and booleans as often as strings).
_PLAIN_TYPES = frozenset({int, float, bool, type(None)})


def scrub_value(value: Any, depth: int = 0) -> Any:
    """Scrub any JSON-like value: strings masked, mappings and sequences walked."""
    if isinstance(value, str):
        return scrub_text(value)
    if type(value) in _PLAIN_TYPES:
        return value
    if isinstance(value, (bytes, bytearray)):
        return scrub_text(value.decode("utf-8", "replace"))
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return scrub_mapping(value, depth + 1)
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and _sensitive_pair(value[0], value[1]):
            return (value[0], FILTERED) if isinstance(value, tuple) else [value[0], FILTERED]
        return type(value)(scrub_value(v, depth + 1) for v in value)
    return value


def _sensitive_pair(name: Any, value: Any) -> bool:
    """``(b"x-password", b"...")``: a header as ASGI and HTTP servers keep them (a frame's
    ``scope["headers"]`` in a Sentry event), raw or as the serializer's ``"b'...'"`` repr."""
    if value in (None, "", b"", FILTERED):
        return False
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    elif isinstance(name, str) and len(name) > 3 and name[:2] in ("b'", 'b"') and name[-1] == name[1]:
        name = name[2:-1]
    return isinstance(name, str) and is_sensitive_key(name)


def scrub_mapping(data: Mapping[Any, Any], depth: int = 0) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key, value in data.items():
        if isinstance(key, str) and is_sensitive_key(key) and value not in (None, "", FILTERED):
            out[key] = _masked_sensitive(key, value)
        else:
            out[key] = scrub_value(value, depth)
    return out


_MASKED_CARD = re.compile(r"\d{6}\*{3,9}\d{4}")


def _masked_sensitive(key: str, value: Any) -> Any:
    # A card number under its own key keeps BIN + last 4, like everywhere else; scrubbing an
    # already masked one again must leave it as it is (events are scrubbed at several depths).
    if _normal_key(key) in ("cardnumber", "pan"):
        if isinstance(value, str) and _MASKED_CARD.fullmatch(value):
            return value
        digits = re.sub(r"\D", "", str(value))
        if 13 <= len(digits) <= 19:
            return mask_card(digits)
    return FILTERED


class EventScrubber:
    """Scrubs a Sentry event dict in place, one method per part of the payload."""

    def scrub_event(self, event: dict[str, Any]) -> dict[str, Any]:
        self.scrub_exception(event)
        self.scrub_request(event)
        self.scrub_user(event)
        self.scrub_breadcrumbs(event)
        for part in ("extra", "contexts", "tags", "logentry", "message", "spans", "threads"):
            if part in event:
                event[part] = scrub_value(event[part])
        return event

    def scrub_exception(self, event: dict[str, Any]) -> None:
        for exc in (event.get("exception") or {}).get("values") or []:
            if isinstance(exc.get("value"), str):
                exc["value"] = scrub_text(exc["value"])
            for frame in (exc.get("stacktrace") or {}).get("frames") or []:
                # Local variables hold raw request bodies, card dataclasses and tokens.
                if "vars" in frame:
                    frame["vars"] = scrub_mapping(frame["vars"])

    def scrub_request(self, event: dict[str, Any]) -> None:
        request = event.get("request")
        if isinstance(request, dict):
            for part in ("headers", "cookies", "data", "query_string", "env", "url"):
                if part in request:
                    request[part] = scrub_value(request[part])

    def scrub_user(self, event: dict[str, Any]) -> None:
        user = event.get("user")
        if isinstance(user, dict):
            # Only the opaque id may identify a user in an error report.
            event["user"] = {k: v for k, v in user.items() if k == "id"}

    def scrub_breadcrumbs(self, event: dict[str, Any]) -> None:
        crumbs = event.get("breadcrumbs")
        values = crumbs.get("values") if isinstance(crumbs, dict) else crumbs
        for crumb in values or []:
            self.scrub_breadcrumb(crumb)

    def scrub_breadcrumb(self, crumb: dict[str, Any]) -> dict[str, Any]:
        if isinstance(crumb.get("message"), str):
            crumb["message"] = scrub_text(crumb["message"])
        if isinstance(crumb.get("data"), Mapping):
            crumb["data"] = scrub_mapping(crumb["data"])
        return crumb
