"""The password file of a switch's nginx (basic auth of its restricted files).

One line per user of the description, ``user:$6$salt$hash`` (SHA-512
crypt, which nginx's ``auth_basic_user_file`` reads through crypt(3)),
the password the user's line in credentials.conf gives (the same as on the
broker). Hashes are made by ``openssl passwd -6`` (Debian's openssl; the
password is written to its standard input, never on its command line,
which other users of the machine can read in /proc).

``sync`` makes the file hold exactly the users given (mode 0640, replaced
at once, never half-written); ``check`` says how it differs; both leave a
line whose hash already matches the password as it is. Neither logs nor
prints a password or a hash.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

from ..errors import ConfigError

MODE = 0o640
_LINE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]*):(\S+)")
_SHA512 = re.compile(r"\$6\$(?:rounds=\d+\$)?([./A-Za-z0-9]{1,16})\$[./A-Za-z0-9]+")


def _openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        raise ConfigError("openssl is not installed (apt-get install openssl): dd_audit "
                          "hashes the password file's passwords with it",
                          option="password_file")
    return path


def hash_password(password: str, salt: str | None = None) -> str:
    """The SHA-512 crypt of ``password`` (``salt``: that salt, else a random one)."""
    if "\n" in password or "\r" in password:
        raise ConfigError("a password with a line break cannot go into the password file",
                          option="password_file")
    cmd = [_openssl(), "passwd", "-6", "-stdin"]
    if salt is not None:
        cmd[3:3] = ["-salt", salt]
    done = subprocess.run(cmd, input=password + "\n", capture_output=True, text=True,
                          timeout=30, check=False)
    out = done.stdout.strip()
    if done.returncode != 0 or not _SHA512.fullmatch(out):
        raise ConfigError(f"openssl passwd -6 failed (exit {done.returncode}): "
                          f"{done.stderr.strip()[:200]}", option="password_file")
    return out


def parse(text: str) -> dict[str, str]:
    """user -> hash of a password file (comments, blank and odd lines skipped)."""
    out = {}
    for line in text.splitlines():
        m = _LINE.fullmatch(line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def matches(hashed: str, password: str) -> bool:
    """Whether ``hashed`` (a ``$6$`` crypt) is that of ``password``."""
    m = _SHA512.fullmatch(hashed)
    if not m or "rounds=" in hashed:
        return False
    return hash_password(password, m.group(1)) == hashed


def read(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            return parse(f.read())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the password file: {exc}", path) from exc


def check(path: str, users: dict[str, str]) -> list[str]:
    """How the file at ``path`` differs from ``users`` (name -> password)."""
    have = read(path)
    out = []
    if not os.path.exists(path):
        return [f"missing password file {path}"]
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o007:
        out.append(f"password file {path}: mode {mode:o}, readable by others "
                   f"(should be {MODE:o})")
    for name in sorted(users):
        if name not in have:
            out.append(f"password file {path}: missing user {name}")
        elif not matches(have[name], users[name]):
            out.append(f"password file {path}: password of {name} differs from "
                       "credentials.conf")
    for name in sorted(set(have) - set(users)):
        out.append(f"password file {path}: extra user {name} (not in the description)")
    return out


def sync(path: str, users: dict[str, str]) -> list[str]:
    """Make the file at ``path`` hold ``users`` (name -> password) and only
    them; one line per change (nothing when it is as it should be)."""
    have = read(path)
    lines, done = {}, []
    for name in sorted(users):
        if name in have and matches(have[name], users[name]):
            lines[name] = have[name]
            continue
        lines[name] = hash_password(users[name])
        done.append(f"password file {path}: {'updated' if name in have else 'added'} {name}")
    for name in sorted(set(have) - set(users)):
        done.append(f"password file {path}: removed {name}")
    exists = os.path.exists(path)
    if not done and exists and os.stat(path).st_mode & 0o777 == MODE:
        return []
    if exists and not done:
        done.append(f"password file {path}: mode set to {MODE:o}")
    write(path, "".join(f"{name}:{h}\n" for name, h in lines.items()))
    return done


def remove(path: str, name: str) -> list[str]:
    """Take ``name`` out of the file (the others are kept as they are)."""
    have = read(path)
    if name not in have:
        return []
    del have[name]
    write(path, "".join(f"{n}:{h}\n" for n, h in have.items()))
    return [f"password file {path}: removed {name}"]


def write(path: str, text: str) -> None:
    """Replace the file with ``text`` at once, mode 0640 from the start,
    keeping the group of the file it replaces (nginx's, once an operator
    gave it: a new file would otherwise get the writer's own group)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    try:
        group = os.stat(path).st_gid
    except FileNotFoundError:
        group = -1
    fd, tmp = tempfile.mkstemp(prefix=".htpasswd-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(fd, MODE)
            if group != -1 and group != os.fstat(fd).st_gid:
                try:
                    os.fchown(fd, -1, group)
                except PermissionError as e:
                    raise PermissionError(
                        f"password file {path}: cannot keep its group "
                        f"{group} (make this user a member of it)") from e
            f.write(text)
            f.flush()
            os.fsync(fd)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
