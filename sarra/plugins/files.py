"""Built-in hooks that act on local files: ``log [FILE]`` and ``move_to DIRECTORY``."""
import errno
import logging
import os
import shutil
import time

from ..message import Message, safe_join

log = logging.getLogger("sarra.hooks.log")


def _field(text: str) -> str:
    """One tab-separated field: no tab or newline inside."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


class Log:
    """``log FILE``: append one line per message to FILE, at any stage:
    time (UTC), stage, relpath, local path, size, separated by tabs
    ('-' for what is unknown). Each line is one append: the instances of a
    configuration can share the file. ``log`` alone writes the same fields
    to the tool's own log (INFO), as sr3's log callback does."""
    USAGE = "log [FILE]"

    def __init__(self, cfg, path: str | None = None):
        self._fd: int | None = None
        self.path = None
        if path is None:
            return
        self.path = os.path.abspath(os.path.expanduser(path))
        directory = os.path.dirname(self.path)
        os.makedirs(directory, exist_ok=True)
        if not os.access(directory, os.W_OK) or \
                (os.path.exists(self.path) and not os.access(self.path, os.W_OK)):
            raise ValueError(f"cannot write {self.path}")

    def write(self, stage: str, msg: Message) -> bool:
        if self.path is None:
            size = msg.size
            log.info("%s: %s -> %s (%s bytes)", stage, msg.relpath, msg.local_path or "-",
                     "?" if size is None else size)
            return True
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                               0o644)
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) \
            + f".{int(now % 1 * 1000):03d}Z"
        size = msg.size
        local = msg.local_path
        line = "\t".join((stamp, stage, _field(msg.relpath), _field(local or "-"),
                          "-" if size is None else str(size)))
        os.write(self._fd, (line + "\n").encode("utf-8", "surrogateescape"))
        return True

    def on_message(self, msg: Message) -> bool:
        return self.write("on_message", msg)

    def on_part(self, msg: Message) -> bool:
        return self.write("on_part", msg)

    def on_file(self, msg: Message) -> bool:
        return self.write("on_file", msg)

    def on_post(self, msg: Message) -> bool:
        return self.write("on_post", msg)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class MoveTo:
    """``move_to DIRECTORY``: move each file that arrived into DIRECTORY, at
    the same path relative to it as under the subscriber's directory. The
    file appears there complete (a rename; across file systems a copy under
    a temporary name, then a rename). Later hooks see the new path."""
    USAGE = "move_to DIRECTORY"

    def __init__(self, cfg, directory: str):
        self.directory = os.path.abspath(os.path.expanduser(directory))
        self._mode = getattr(cfg, "default_dir_mode", 0o755)

    def on_file(self, msg: Message) -> bool:
        local, root = msg.local_path, msg.local_root
        if not local or not root or not os.path.isfile(local):
            return True
        os.makedirs(self.directory, mode=self._mode, exist_ok=True)
        dest = safe_join(self.directory, os.path.relpath(local, os.path.realpath(root)))
        os.makedirs(os.path.dirname(dest), mode=self._mode, exist_ok=True)
        try:
            os.replace(local, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            tmp = f"{dest}.{os.getpid()}.tmp"
            try:
                shutil.copy2(local, tmp)
                os.replace(tmp, dest)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            os.unlink(local)
        msg.local_path, msg.local_root = dest, self.directory
        return True
