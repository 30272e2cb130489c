"""Configuration fragments included from a URL (``include https://...``).

A fragment is fetched (https; http only with ``include_http on``) and kept
in ``<state_dir>/includes/``, one file per URL with what the server said of
it. Loading for a run (``foreground``, and so every started instance)
fetches it again; other loads (``sarra status``, ``show``...) read the
cached copy when there is one. When the fetch fails the cached copy is
used, with a warning; with none, the load fails naming the URL. A running
instance fetches it again every ``include_refresh`` (``refresh_due``):
a copy that changed is kept for the next start, and the log says a restart
applies it.

Standard library only (urllib): the configuration layer imports no
transfer. A fragment is data from elsewhere: it may not include anything,
read environment variables, declare any, or name hooks (which run code);
the loader enforces that (``FRAGMENT_FORBIDS``).
"""
import hashlib
import json
import os
import time
from dataclasses import dataclass

from . import paths

MAX_BYTES = 1 << 20          # a configuration fragment is small
FRAGMENT_FORBIDS = ("include", "declare", "on_message", "on_part", "on_file", "on_post",
                    "callback", "callback_prepend", "flowcb", "flowCallback",
                    "flowCallbackPrepend", "plugin", "on_heartbeat", "on_housekeeping")


class FetchError(Exception):
    """The URL could not be read (the reason, with no secret in it)."""


def is_url(target: str) -> bool:
    return target.lower().startswith(("https://", "http://"))


def cache_path(url: str) -> str:
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]
    folder = os.path.join(paths.state_dir(), "includes")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{digest}.conf")


@dataclass
class Fragment:
    url: str
    text: str
    fetched: float            # when it was read from the server (time.time())
    cached: bool              # read from the cached copy (not fetched now)
    problem: str | None = None   # why the fetch failed, when it did


def _no_downgrade(allow_http: bool):
    """A redirect handler: redirects are followed, but not from https to http
    unless allowed. (urllib.request, and http.client and email with it, are
    imported by a fetch only.)"""
    import urllib.request

    class NoDowngrade(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            if not allow_http and not newurl.lower().startswith("https://"):
                raise FetchError(f"redirected to {newurl}, not https (include_http on allows it)")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return NoDowngrade()


def fetch(url: str, timeout: float = 30.0, allow_http: bool = False) -> str:
    """The text at ``url`` (UTF-8, at most MAX_BYTES); FetchError otherwise."""
    import urllib.error
    import urllib.request
    request = urllib.request.Request(url, headers={"User-Agent": "sarra-include"})
    opener = urllib.request.build_opener(_no_downgrade(allow_http))
    try:
        with opener.open(request, timeout=timeout) as resp:
            body = resp.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"{reason}") from None
    if len(body) > MAX_BYTES:
        raise FetchError(f"more than {MAX_BYTES} bytes: not a configuration fragment")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise FetchError("not UTF-8 text") from None


def _store(url: str, text: str) -> None:
    path = cache_path(url)
    tmp = f"{path}.{os.getpid()}.new"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    meta = {"url": url, "fetched": time.time()}
    with open(f"{tmp}.json", "w", encoding="utf-8") as f:
        json.dump(meta, f)
    os.replace(f"{tmp}.json", path + ".json")


def cached(url: str) -> Fragment | None:
    path = cache_path(url)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        with open(path + ".json", encoding="utf-8") as f:
            fetched = float(json.load(f).get("fetched", 0))
    except (OSError, ValueError):
        return None
    return Fragment(url, text, fetched, cached=True)


def get(url: str, refresh: bool, timeout: float = 30.0, allow_http: bool = False) -> Fragment:
    """The fragment at ``url``: fetched (and cached) when ``refresh`` or when
    there is no cached copy; the cached copy, with ``problem`` said, when the
    fetch fails. FetchError: it failed and nothing is cached."""
    copy = cached(url)
    if copy is not None and not refresh:
        return copy
    try:
        text = fetch(url, timeout, allow_http)
    except FetchError as exc:
        if copy is None:
            raise
        copy.problem = str(exc)
        return copy
    _store(url, text)
    return Fragment(url, text, time.time(), cached=False)


def refresh_due(urls: dict[str, str], timeout: float = 30.0,
                allow_http: bool = False) -> list[str]:
    """Fetch each URL again (``urls``: url -> the text the run loaded); the
    URLs whose text changed (their new copy cached for the next start).
    A URL that cannot be read now is left as it was."""
    changed = []
    for url, loaded in urls.items():
        try:
            text = fetch(url, timeout, allow_http)
        except FetchError:
            continue
        if text != loaded:
            _store(url, text)
            changed.append(url)
    return changed
