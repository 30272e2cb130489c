"""A private mosquitto broker on free loopback ports: an MQTT listener and a
websockets listener, its own configuration file, password file (made by
``mosquitto_passwd``), persistence directory and log, in one directory.
Used by the tests (the ``mosquitto`` fixture) and the benchmarks; never the
system's mosquitto on 1883.

    broker = start_mosquitto(Path("/tmp/m"), {"alice": "secret"})
    broker.url("alice"), broker.ws_url("alice")   # mqtt://alice@127.0.0.1:NNNN/
    broker.credentials                            # credentials.conf lines
    broker.stop(); broker.start()                 # an outage (persistence kept)
    broker.close()
"""
from __future__ import annotations

import getpass
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.proc import free_port, port_open, stop_process, tail

_CONF = """\
per_listener_settings false
user {user}
allow_anonymous false
password_file {home}/passwd
persistence true
persistence_location {home}/data/
autosave_interval 1
max_queued_messages 100000
max_inflight_messages 1000
log_dest file {home}/mosquitto.log
log_type error
log_type warning
log_type notice
listener {mqtt} 127.0.0.1
listener {ws} 127.0.0.1
protocol websockets
"""


def find_mosquitto() -> str | None:
    for path in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if path and Path(path).exists():
            return path
    return None


@dataclass
class MosquittoBroker:
    """A private mosquitto (see the module)."""

    home: Path
    users: dict[str, str]
    mqtt_port: int = 0
    ws_port: int = 0
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def url(self, user: str, password: bool = False) -> str:
        auth = f"{user}:{self.users[user]}" if password else user
        return f"mqtt://{auth}@127.0.0.1:{self.mqtt_port}/"

    def ws_url(self, user: str, password: bool = False) -> str:
        auth = f"{user}:{self.users[user]}" if password else user
        return f"ws://{auth}@127.0.0.1:{self.ws_port}/mqtt"

    @property
    def credentials(self) -> str:
        """credentials.conf lines for every user, on both listeners."""
        return "".join(f"{self.url(u, True)}\n{self.ws_url(u, True)}\n" for u in self.users)

    @property
    def log(self) -> str:
        path = self.home / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise RuntimeError("mosquitto not found: run `bash tools/setup.sh` (mosquitto)")
        conf = self.home / "mosquitto.conf"
        conf.write_text(_CONF.format(home=self.home, user=getpass.getuser(), mqtt=self.mqtt_port, ws=self.ws_port),
                        encoding="utf-8")
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + 15
        while not (port_open("127.0.0.1", self.mqtt_port, 0.5)
                   and port_open("127.0.0.1", self.ws_port, 0.5)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if \
                    self.proc.poll() is not None else ""
                self.stop()
                raise RuntimeError(f"mosquitto did not answer on 127.0.0.1:{self.mqtt_port}"
                                   f"/{self.ws_port}:\n{err}{tail(self.log)}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=10)
            self.proc = None

    close = stop


def _passwd(home: Path, users: dict[str, str]) -> None:
    path = home / "passwd"
    path.write_text("", encoding="utf-8")
    path.chmod(0o600)
    for user, password in users.items():
        res = subprocess.run(["mosquitto_passwd", "-b", str(path), user, password],
                             capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL)
        if res.returncode != 0:
            raise RuntimeError(f"mosquitto_passwd failed: {res.stderr}")


def start_mosquitto(home: Path, users: dict[str, str]) -> MosquittoBroker:
    """Start a private mosquitto in ``home`` whose accounts are ``users``
    (name -> password). Raises RuntimeError."""
    home = Path(home)
    (home / "data").mkdir(parents=True, exist_ok=True)
    _passwd(home, users)
    last: RuntimeError | None = None
    for _attempt in range(3):          # free_port may lose a race
        broker = MosquittoBroker(home, dict(users), free_port(), free_port())
        try:
            broker.start()
            return broker
        except RuntimeError as exc:
            last = exc
    raise last or RuntimeError("mosquitto did not start")
