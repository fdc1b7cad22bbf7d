"""Passwords in database URLs: shown masked, scrubbed from error messages and logs.

A URL such as ``postgresql://user:secret@host:5432/db`` (or one carrying
``?password=secret``) is shown as ``postgresql://user:***@host:5432/db``
everywhere jetlab prints, logs or stores it (:func:`mask_url`); error messages of the
database drivers that might quote it pass through :func:`scrub`, and
:func:`keep_secret` does the same for every log record and error while a command runs.
URLs without a password (SQLite files, PostgreSQL with ``PGPASSWORD``/``.pgpass``)
are shown as they are.
"""

from __future__ import annotations

import contextlib
import logging
import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from jetlab.errors import JetlabError

__all__ = ["MASK", "keep_secret", "mask_url", "scrub", "url_secrets"]

MASK = "***"


def _split(url: str):
    try:
        return urlsplit(url)
    except ValueError:  # e.g. a bad port or IPv6 literal: mask by pattern below
        return None


def url_secrets(url: str) -> list[str]:
    """The passwords ``url`` carries (in the user-info part or a ``password=`` query), as
    written and percent-decoded; empty for a URL without one."""
    found = []
    parts = _split(url)
    if parts is not None:
        if parts.password:
            found.append(parts.password)
        found += [v for k, v in parse_qsl(parts.query, keep_blank_values=False) if k.lower() == "password"]
        found += [quote(v, safe="") for v in found]
    else:
        match = re.match(r"[^:/]+://[^:@/]*:([^@/]*)@", url)
        if match and match.group(1):
            found.append(match.group(1))
    found += [unquote(s) for s in found]
    return sorted({s for s in found if s}, key=len, reverse=True)


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (user, host, port, database, other query
    parameters kept); unchanged without one."""
    if not url_secrets(url):
        return url
    parts = _split(url)
    if parts is None:
        return re.sub(r"^([^:/]+://[^:@/]*:)[^@/]*@", rf"\g<1>{MASK}@", url)
    netloc = parts.netloc
    if parts.password:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}:{MASK}@{host}"
    query = parts.query
    if query:
        query = urlencode([(k, MASK if k.lower() == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)],
                          safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def scrub(text: str, *urls: str) -> str:
    """``text`` with every password of ``urls`` replaced by ``***`` (the URLs themselves masked)."""
    for url in urls:
        if not url:
            continue
        masked = mask_url(url)
        text = text.replace(url, masked)
        for secret in url_secrets(url):
            text = text.replace(secret, MASK)
    return text


class _ScrubFilter(logging.Filter):
    def __init__(self, urls):
        super().__init__()
        self.urls = urls

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message, *self.urls)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if scrub(str(exc), *self.urls) != str(exc):  # the traceback would quote it: the scrubbed line is enough
                record.msg, record.args, record.exc_info, record.exc_text = (
                    f"{clean} ({scrub(str(exc), *self.urls).splitlines()[0]})", None, None, None)
        return True


@contextlib.contextmanager
def keep_secret(url: str | None):
    """While in the block, log records (root and Optuna handlers) and escaping exceptions have
    the password of ``url`` scrubbed; an exception whose message quoted it becomes a one-line
    :class:`~jetlab.errors.JetlabError` (its traceback would show the message again)."""
    if not url or not url_secrets(url):
        yield
        return
    flt = _ScrubFilter([url])
    handlers = [h for name in (None, "optuna") for h in logging.getLogger(name).handlers]
    for handler in handlers:
        handler.addFilter(flt)
    try:
        yield
    except Exception as exc:
        clean = scrub(str(exc), url)
        if clean == str(exc):
            raise
        error = JetlabError(clean if isinstance(exc, JetlabError) else f"{type(exc).__name__}: {clean.splitlines()[0]}")
        error.exit_code = getattr(exc, "exit_code", error.exit_code)
        raise error from None
    finally:
        for handler in handlers:
            handler.removeFilter(flt)
