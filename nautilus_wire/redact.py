"""Secrets never printed: credentials in URLs and secret query parameters are masked
in every log line, error message and HTTP body that can carry a URL."""

from __future__ import annotations

import logging
import re

MASK = "xxxxx"
# scheme://user:password@ and scheme://:password@
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s'\"]*):[^@/\s'\"]+@")
# ?token=…, &password=…, passwd, secret, key (case-insensitive), up to & ' " space
_QUERY = re.compile(r"(?P<name>[?&](?:token|password|passwd|pass|secret|api_key|apikey|key)=)"
                    r"[^&\s'\"#]*", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with every URL credential and secret query value masked."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _QUERY.sub(lambda m: f"{m['name']}{MASK}", text)


class RedactingFilter(logging.Filter):
    """Masks secrets in every record a handler writes, the libraries' included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
