"""A switch's restricted posts (doc/protocol.md §17): what dd_sara refuses,
where it keeps the files, where it announces them.

A post with a ``readers`` header (sarra/readers.py) is kept restricted on
every switch it crosses. dd_sara, given ``private_dir`` and
``private_base_url`` (``dd_audit configs`` writes them):

- stores the file under ``<private_dir>/<readers>/`` (``<readers>`` the
  header's canonical value) instead of under the public tree, the rest of
  its path as it would have been there;
- announces it at ``<private_base_url><readers>/``, not on ``xpublic``:
  on ``private_exchange`` (``xprivate``: the switch's links read it, to
  carry it on) and on ``xprivate_<u>`` for each reader ``u`` of this switch
  (``readers.local``) whose exchange exists (dd_audit declares one per user);
  a reader without one is reported to the source (a log message, 404) when
  this switch is among the data's destinations;
- refuses (403, a log message to the source) a post that would widen a
  restriction: one whose URL is a switch's private URL
  (``.../_private/<readers>/...``, wherever that is between its base URL
  and its relpath, as the server resolves it: ``url_key``) but whose header
  names other readers (or none: a header changed on the way), and a post of a file this switch holds
  restricted whose readers are not among those (a public post of it, or
  one naming somebody else). A narrower list is accepted.

A dd_sara without ``private_dir`` refuses every restricted post (403):
it would otherwise serve the file to anyone.
"""
from __future__ import annotations

import os
from dataclasses import replace
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from ..message import Message
from ..readers import (HEADER, PRIVATE_PATH, Reader, canonical, local, parse_readers,
                       private_exchange, widens)
from .filter import Placement


class Refused(Exception):
    """A post dd_sara will not take: ``code`` and the text of its log message."""

    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code, self.text = code, text


def url_key(url: str) -> str | None:
    """The readers a switch's private URL restricts to: the ``<readers>`` of
    ``.../_private/<readers>/...`` (None: not a private URL). ``url``: the
    post's URL (base URL and relpath), judged as the server will resolve it
    (escapes decoded, ``.``, ``..`` and empty components resolved, as nginx
    does before it picks a location), and wherever its first ``_private``
    component is: a post that moved ``_private/<readers>/`` from its base
    URL into its relpath (``https://b/`` + ``_private/bob/f``), split them
    (``https://b/_private/`` + ``bob/f``) or hid them behind ``..`` or
    ``%5F`` still names the same private file. (The neighbour's base URL is
    not known here: any ``_private`` component may be where its private
    tree is served.)"""
    scheme, sep, rest = url.partition("://")
    path = rest.partition("/")[2] if sep else url.partition(":")[2]
    words: list[str] = []
    for word in unquote(path).split("/"):
        if word == "..":
            if words:
                words.pop()
        elif word not in ("", "."):
            words.append(word)
    for here, word in enumerate(words[:-1]):
        if word == PRIVATE_PATH:
            return words[here + 1]
    return None


def readers_of(msg: Message) -> tuple[Reader, ...]:
    """The readers of ``msg``'s header (() for a public post); Refused (417)
    for a header that does not parse."""
    try:
        return parse_readers(msg.headers.get(HEADER), HEADER)
    except ValueError as exc:
        raise Refused(417, f"invalid message: {exc}") from None


class Private:
    """dd_sara's side of restricted posts (None of these without ``private_dir``:
    every restricted post is refused)."""

    def __init__(self, cfg):
        self.cluster = cfg.cluster
        self.exchange = cfg.private_exchange or "xprivate"
        self.dir = os.path.abspath(cfg.private_dir) if cfg.private_dir else None
        self.base_url = cfg.private_base_url or ""
        self.public = os.path.abspath(cfg.post_base_dir or cfg.directory)
        if self.dir is None:
            return
        if not self.base_url:
            raise ConfigError("private_dir needs private_base_url (the URL private_dir is "
                              "served at)", option="private_base_url")
        if not self.base_url.endswith("/"):
            self.base_url += "/"
        if urlsplit(self.base_url).password:
            raise ConfigError("private_base_url must not contain a password",
                              option="private_base_url")
        for a, b in ((self.dir, self.public), (self.public, self.dir)):
            if a == b or a.startswith(b.rstrip("/") + "/"):
                raise ConfigError(f"private_dir {self.dir} and the public tree {self.public} "
                                  "overlap: a restricted file would be served to anyone",
                                  option="private_dir")
        for directory in dict.fromkeys([cfg.directory, *(m.directory for m in cfg.masks)]):
            self._under_public(directory)

    def _under_public(self, directory: str) -> str:
        """``directory`` relative to the public tree (ConfigError outside it)."""
        full = os.path.abspath(directory)
        if full != self.public and not full.startswith(self.public.rstrip("/") + "/"):
            raise ConfigError(f"directory {directory} is not under post_base_dir "
                              f"{self.public}: its restricted counterpart under private_dir "
                              "cannot be told", option="directory")
        return os.path.relpath(full, self.public)

    # -- the filter ------------------------------------------------------------
    def admit(self, msg: Message, placement: Placement, public_path) -> Placement:
        """The placement of ``msg`` (under private_dir when restricted), or
        Refused. ``public_path(placement)``: where it would go in the public
        tree (the worker's target), to find what this switch already holds
        (None: a flow that places nothing)."""
        readers = readers_of(msg)
        key = canonical(readers)
        said = url_key(msg.base_url + msg.relpath)
        if said is not None and said != key:
            raise Refused(403, f"readers '{msg.headers.get(HEADER, '')}' differ from the "
                               f"restriction of its URL ({said}): a readers header changed "
                               "on the way; refused")
        if readers and self.dir is None:
            raise Refused(403, f"a restricted post (readers {key}) and this dd_sara has no "
                               "private_dir: refused")
        if self.dir is None:
            return placement
        if msg.operation == "file" and public_path is not None:
            rel = os.path.relpath(public_path(placement), self.public)
            held = self.held(rel)
            wider = [k for k in held if widens(parse_readers(k), readers)]
            if wider:
                raise Refused(403, f"readers '{key or '(public)'}' would widen the "
                                   f"restriction to {wider[0]} this switch holds for it: "
                                   "refused")
        if not readers:
            msg.headers.pop(HEADER, None)
            return placement
        msg.headers[HEADER] = key
        return replace(placement, directory=os.path.join(
            self.dir, key, self._under_public(placement.directory)))

    def held(self, rel: str) -> list[str]:
        """The readers keys under which this switch holds ``rel`` restricted."""
        try:
            keys = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        out = []
        for key in keys:
            try:
                parse_readers(key)
            except ValueError:
                continue
            if key and os.path.lexists(os.path.join(self.dir, key, rel)):
                out.append(key)
        return out

    # -- the re-post -----------------------------------------------------------
    def restricted(self, msg: Message) -> bool:
        return self.dir is not None and bool(msg.headers.get(HEADER))

    def where(self, msg: Message) -> tuple[str, str]:
        """(base directory, base URL) of a restricted copy."""
        key = msg.headers[HEADER]
        return os.path.join(self.dir, key), f"{self.base_url}{key}/"

    def exchanges(self, msg: Message, exists) -> tuple[list[str], list[str]]:
        """(the exchanges the post of a restricted copy goes to, the readers
        of this switch without an exchange). ``exists(name)``: whether the
        exchange is on the broker (never declared here: a header must create
        nothing)."""
        out, unknown = [self.exchange], []
        for user in local(parse_readers(msg.headers[HEADER]), self.cluster):
            name = private_exchange(user)
            if exists(name):
                out.append(name)
            else:
                unknown.append(user)
        return out, unknown

    def destined_here(self, msg: Message) -> bool:
        """Whether this switch is among the data's destinations (to_clusters)."""
        dest = {c.strip() for c in msg.headers.get("to_clusters", "").split(",")}
        return "ALL" in dest or (self.cluster is not None and self.cluster in dest)
