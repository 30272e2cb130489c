"""The nginx site that serves a switch's tree (data_dir) at its base_url.

``site_config`` gives a ``server { ... }`` block for nginx's sites directory
(e.g. /etc/nginx/sites-available/sarra-<cluster>); with ``standalone`` the
block is wrapped in a whole nginx.conf (events, http, pid and logs relative
to nginx's prefix) for ``nginx -p DIR -c FILE``, as the tests run it.
Plain text generation: no I/O.

Symbolic links below data_dir are never followed (``disable_symlinks on
from=<data_dir>``: any link in the path below data_dir is a 403, whoever
made it and wherever it points; data_dir itself and the directories above
it may be links). ``if_not_owner`` would follow a link whose owner owns its
target too: every link made by a switch running as root to anything of
root's, and any made by the switch's user to the user's own files outside
the tree. The switch needs none served: a link is announced as one (sum L
and its ``link`` header) and each subscriber makes it on its side, and
dd_sara writes the files it acquires at their real paths (it resolves the
directories of a relpath) and announces those.

An https base_url gets a TLS server (``listen ... ssl``) with the
certificate and key given, TLS 1.2 and 1.3 only (``TLS_SETTINGS``); a
certificate given for an http base_url is refused, not ignored.
"""
from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from ..readers import PRIVATE_PATH
from .description import Switch

# what a TLS server block holds besides its certificate: no protocol older
# than TLS 1.2, the client's cipher choice among nginx's defaults (all
# current AEAD suites), resumed sessions without tickets (no key to rotate)
TLS_SETTINGS = ("ssl_protocols TLSv1.2 TLSv1.3;", "ssl_prefer_server_ciphers off;",
                "ssl_session_cache shared:sarra_tls:10m;", "ssl_session_timeout 1h;",
                "ssl_session_tickets off;")

_STANDALONE = """\
# A whole nginx.conf: run it with  nginx -p PREFIX_DIR -c THIS_FILE
# (pid, logs and temporary files live in PREFIX_DIR; stays in the foreground)
daemon off;
pid nginx.pid;
error_log error.log warn;
events {{ worker_connections 1024; }}
http {{
    default_type application/octet-stream;
    types {{ }}
    sendfile on;
    tcp_nopush on;
    server_tokens off;
    access_log access.log;
    client_body_temp_path client_body;
    proxy_temp_path proxy;
    fastcgi_temp_path fastcgi;
    uwsgi_temp_path uwsgi;
    scgi_temp_path scgi;

{server}}}
"""

REALM = "sarra restricted files"


def private_map(switch: Switch, indent: str = "") -> str:
    """The ``map`` that says, for each request of the private tree, whether
    its user may have it (1) or not (0): a link of the switch (which carries
    restricted files onward) may have any; another user, those whose path's
    first component after ``_private/`` (the readers, doc/protocol.md §17)
    names it, plainly or qualified with this switch's cluster. A request
    without credentials gets 1 here, so that auth_basic answers it 401.
    ``$uri`` is the normalised path (%-escapes decoded, ``.`` and ``..``
    resolved): ``_private/bob/../eve/f`` is eve's."""
    links = switch.names("link")
    prefix = re.escape(_path(switch) + PRIVATE_PATH + "/")
    cluster = re.escape(switch.cluster)
    lines = [f"# who may read what below {switch.private_base_url} (dd_audit(1))",
             f'map "$remote_user:$uri" ${_variable(switch)} {{',
             "    default 0;",
             '    "~^:" 1;                       # no credentials: auth_basic says 401']
    if links:
        lines.append(f'    "~^({"|".join(links)}):" 1;  # the links carry restricted files')
    lines += [f'    "~^([A-Za-z0-9-]+):{prefix}([^/]*,)?\\1(@{cluster})?(,[^/]*)?/" 1;',
              "}"]
    return "".join(f"{indent}{line}\n" for line in lines)


def _variable(switch: Switch) -> str:
    return "sarra_reader_" + re.sub(r"[^A-Za-z0-9_]", "_", switch.cluster)


def _path(switch: Switch) -> str:
    path = unquote(urlsplit(switch.base_url).path) or "/"
    return path if path.endswith("/") else path + "/"


def _private_location(switch: Switch) -> list[str]:
    """The location of the private tree: basic auth against the password
    file, then the map's verdict (403 for a user who is neither a reader
    nor a link), no listing, no symbolic link followed."""
    private = os.path.normpath(switch.private_dir)
    for key, value in (("private_dir", private), ("password_file", switch.password_file)):
        if "$" in value:
            raise ConfigError(f"'{value}': nginx would read '$' as a variable", switch.path,
                              option=key)
    return [f"    location {_quoted(_path(switch) + PRIVATE_PATH + '/')} {{",
            f"        alias {_quoted(private.rstrip('/') + '/')};",
            f"        auth_basic {_quoted(REALM)};",
            f"        auth_basic_user_file {_quoted(switch.password_file)};",
            f"        if (${_variable(switch)} = 0) {{ return 403; }}",
            "        autoindex off;",
            f"        disable_symlinks on {_quoted('from=' + private)};",
            "    }"]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _listen(switch: Switch, listen: str | None) -> tuple[str, str | None]:
    """(the listen value, the server_name or None)."""
    parts = urlsplit(switch.base_url)
    host = parts.hostname or "localhost"
    ssl = " ssl" if parts.scheme == "https" else ""
    if listen:
        return listen + ssl, None if _is_ip(host) else host
    port = parts.port or (443 if ssl else 80)
    if _is_ip(host):
        address = f"[{host}]" if ":" in host else host
        return f"{address}:{port}{ssl}", None
    return f"{port}{ssl}", host


def server_block(switch: Switch, listen: str | None = None,
                 ssl_certificate: str | None = None,
                 ssl_certificate_key: str | None = None, indent: str = "") -> str:
    """``server { ... }`` serving data_dir at the path of base_url."""
    value, server_name = _listen(switch, listen)
    path = unquote(urlsplit(switch.base_url).path) or "/"
    if not path.endswith("/"):
        path += "/"
    root = os.path.normpath(switch.data_dir)
    if "$" in root:
        raise ConfigError(f"'{root}': nginx would read '$' as a variable (in root, alias "
                          "and disable_symlinks)", switch.path, option="data_dir")
    lines = [f"# sarra switch '{switch.cluster}': {root} at {switch.base_url}",
             f"# (dd_audit nginx {switch.path})",
             "server {",
             f"    listen {value};"]
    if server_name:
        lines.append(f"    server_name {server_name};")
    if value.endswith(" ssl"):
        if not (ssl_certificate and ssl_certificate_key):
            raise ConfigError("an https base_url needs --ssl_certificate and "
                              "--ssl_certificate_key", switch.path, option="base_url")
        lines += [f"    ssl_certificate {_quoted(ssl_certificate)};",
                  f"    ssl_certificate_key {_quoted(ssl_certificate_key)};",
                  *(f"    {line}" for line in TLS_SETTINGS)]
    elif ssl_certificate or ssl_certificate_key:
        raise ConfigError(f"--ssl_certificate and --ssl_certificate_key are for an https "
                          f"base_url, not {switch.base_url}: make it https://",
                          switch.path, option="base_url")
    lines.append(f"    location {_quoted(path)} {{")
    if path == "/":
        lines.append(f"        root {_quoted(root)};")
    else:
        lines.append(f"        alias {_quoted(root.rstrip('/') + '/')};")
    lines += ["        autoindex off;",
              "        # no symbolic link below data_dir is followed (dd_audit(1))",
              f"        disable_symlinks on {_quoted('from=' + root)};",
              "    }", *_private_location(switch), "}"]
    return "".join(f"{indent}{line}\n" if line else "\n" for line in lines)


def _quoted(text: str) -> str:
    if any(c in text for c in " \t;{}#'\"\\$"):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def site_config(switch: Switch, listen: str | None = None, standalone: bool = False,
                ssl_certificate: str | None = None,
                ssl_certificate_key: str | None = None) -> str:
    """The site configuration (``standalone``: a whole nginx.conf around it)."""
    if not standalone:
        return private_map(switch) + server_block(switch, listen, ssl_certificate,
                                                  ssl_certificate_key)
    return _STANDALONE.format(server=private_map(switch, "    ") + server_block(
        switch, listen, ssl_certificate, ssl_certificate_key, indent="    "))
