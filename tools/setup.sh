#!/usr/bin/env bash
# Make this machine ready to build and test sarra (idempotent).
#   - installs rabbitmq-server and nginx with apt when either binary is missing
#   - makes sure RabbitMQ answers on 127.0.0.1:5672 (starts it if needed)
#   - enables RabbitMQ's management plugin (dd_audit's HTTP API on 127.0.0.1:15672)
#   - installs openssh-server (for the SFTP tests; the system sshd is not started)
#   - installs vsftpd, mosquitto, chromium + chromium-driver, openssl (private test servers)
#   - creates .venv in the repo root and installs the package with its test extras
# Safe to run from any directory and as often as you like.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

AMQP_HOST=127.0.0.1
AMQP_PORT=5672
STARTUP_TIMEOUT=60
PYTHON="${PYTHON:-python3}"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

# root, or sudo when available; the rabbitmq CLI tools also need root (erlang cookie)
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    SUDO=()
fi

export PATH="$PATH:/usr/sbin:/sbin"

have() { command -v "$1" >/dev/null 2>&1; }

# apt-get install ARGS... without letting apt start the services it installs
# (nginx would grab port 80, sshd port 22; RabbitMQ is started below): a
# temporary policy-rc.d, only when the machine has none of its own.
# apt-get update runs once per set-up.
APT_UPDATED=0
apt_install() {
    local policy=/usr/sbin/policy-rc.d added=0 rc=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 755 "$policy"
        added=1
        trap '"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || rc=$?
        APT_UPDATED=1
    fi
    if [ "$rc" -eq 0 ]; then
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" \
            >/dev/null || rc=$?
    fi
    if [ "$added" -eq 1 ]; then
        "${SUDO[@]}" rm -f "$policy"
        trap - EXIT
    fi
    return "$rc"
}

port_open() {
    "$PYTHON" - "$AMQP_HOST" "$AMQP_PORT" <<'PY' >/dev/null 2>&1
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

# ---------------------------------------------------------------- packages
if ! have rabbitmq-server || ! have nginx; then
    if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
        die "rabbitmq-server/nginx missing and not root (no sudo): install them with apt-get"
    fi
    say "installing rabbitmq-server and nginx with apt-get"
    apt_install rabbitmq-server nginx
    have rabbitmq-server || die "rabbitmq-server still missing after apt-get install"
    have nginx || die "nginx still missing after apt-get install"
else
    say "rabbitmq-server and nginx present"
fi

# ---------------------------------------------------------------- rabbitmq
rmq_ping() { "${SUDO[@]}" rabbitmq-diagnostics -q ping >/dev/null 2>&1; }

if port_open; then
    say "RabbitMQ answers on $AMQP_HOST:$AMQP_PORT"
else
    if rmq_ping; then
        # node up but application stopped (e.g. a test's stop_app was interrupted)
        say "RabbitMQ node up, application stopped: rabbitmqctl start_app"
        "${SUDO[@]}" rabbitmqctl -q start_app >/dev/null
    else
        say "starting RabbitMQ (rabbitmq-server -detached)"
        "${SUDO[@]}" rabbitmq-server -detached >/dev/null 2>&1 || true
    fi
    deadline=$((SECONDS + STARTUP_TIMEOUT))
    until port_open && rmq_ping; do
        [ "$SECONDS" -lt "$deadline" ] || die "RabbitMQ did not answer on $AMQP_HOST:$AMQP_PORT within ${STARTUP_TIMEOUT}s"
        sleep 1
    done
    "${SUDO[@]}" timeout "$STARTUP_TIMEOUT" rabbitmqctl -q await_startup >/dev/null 2>&1 || true
    say "RabbitMQ answers on $AMQP_HOST:$AMQP_PORT"
fi

# ---------------------------------------------------------------- rabbitmq management API
# dd_audit administers the broker through the management plugin's HTTP API.
MGMT_PORT=15672

mgmt_answers() {
    "$PYTHON" - "$AMQP_HOST" "$MGMT_PORT" <<'PY' >/dev/null 2>&1
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/api/overview", timeout=2)
except urllib.error.HTTPError:
    pass            # 401 without credentials: the API is up
except OSError:
    sys.exit(1)
PY
}

if mgmt_answers; then
    say "RabbitMQ management API answers on $AMQP_HOST:$MGMT_PORT"
else
    if ! "${SUDO[@]}" rabbitmq-plugins -q list -e -m 2>/dev/null | grep -qx rabbitmq_management; then
        say "enabling RabbitMQ's management plugin (rabbitmq_management)"
        "${SUDO[@]}" rabbitmq-plugins -q enable rabbitmq_management >/dev/null
    fi
    deadline=$((SECONDS + STARTUP_TIMEOUT))
    until mgmt_answers; do
        [ "$SECONDS" -lt "$deadline" ] || die "RabbitMQ management API did not answer on $AMQP_HOST:$MGMT_PORT within ${STARTUP_TIMEOUT}s"
        sleep 1
    done
    say "RabbitMQ management API answers on $AMQP_HOST:$MGMT_PORT"
fi

# ---------------------------------------------------------------- venv
VENV="$REPO_ROOT/.venv"
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    say "existing .venv is broken: recreating"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    say "creating .venv"
    "$PYTHON" -m venv "$VENV"
fi

SETUP_SHA="$(sha256sum setup.py | cut -c1-16)"
STAMP="$VENV/.installed-$SETUP_SHA"
if [ -e "$STAMP" ]; then
    say "python packages up to date (.venv)"
else
    say "installing python packages into .venv"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[test,mqtt]'
    rm -f "$VENV"/.installed-*
    touch "$STAMP"
fi

# ---------------------------------------------------------------- packaging tools
# tests/packaging builds the .deb (dpkg-buildpackage with dh-python/pybuild),
# runs lintian, renders the man pages and builds the .rpm from packaging/sarra.spec.
# It also installs the .deb into a throwaway root and runs its tools there with
# /usr/bin/python3: the .deb's Python dependencies (debian/control's Depends)
# come from the system.
PACKAGING_DEBS=(debhelper dh-python python3-all python3-setuptools pybuild-plugin-pyproject
                lintian man-db groff-base rpm
                python3-paramiko python3-pika python3-prometheus-client python3-psutil python3-requests
                python3-watchdog python3-xxhash python3-yaml)
deb_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

# ensure_debs WHAT IF_NOT_ROOT PKG...: install the Debian packages missing
# (not started); without root or sudo, IF_NOT_ROOT says whether that is a
# warning (the tests that need them fail) or an error.
ensure_debs() {
    local what=$1 if_not_root=$2 missing=() pkg
    shift 2
    if have dpkg-query; then
        for pkg in "$@"; do
            deb_installed "$pkg" || missing+=("$pkg")
        done
    fi
    if [ ${#missing[@]} -eq 0 ]; then
        say "$what present"
    elif [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
        if [ "$if_not_root" = warn ]; then
            say "WARNING: not root (no sudo): the packaging tests will skip what needs ${missing[*]}"
        else
            die "${missing[*]} missing and not root (no sudo): install them with apt-get"
        fi
    else
        say "installing $what with apt-get (not started): ${missing[*]}"
        apt_install --no-install-recommends "${missing[@]}"
        for pkg in "${missing[@]}"; do
            deb_installed "$pkg" || die "$pkg still missing after apt-get install"
        done
    fi
}
ensure_debs "packaging tools" warn "${PACKAGING_DEBS[@]}"

# ---------------------------------------------------------------- openssh-server
# The SFTP tests start their own sshd (private config and keys in a temp dir, a
# loopback port); this only installs the binary. The system's sshd is not
# started: apt is kept from starting services, as for nginx above.
if have sshd && have ssh-keygen; then
    say "openssh-server present"
elif [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
    die "openssh-server missing and not root (no sudo): install it with apt-get"
else
    say "installing openssh-server with apt-get (not started)"
    apt_install --no-install-recommends openssh-server
    have sshd || die "sshd still missing after apt-get install"
fi

# ---------------------------------------------------------------- other test servers
# The tests start private instances of these on loopback ports (their own
# configuration files in temp dirs); apt is kept from starting the system ones.
#   vsftpd: FTP/FTPS (dd_poll, the FTP transfer); mosquitto: MQTT;
#   chromium + chromedriver: the web console in a real browser; openssl: test CAs.
SERVER_DEBS=(vsftpd mosquitto chromium chromium-driver openssl)
ensure_debs "vsftpd, mosquitto, chromium, chromedriver, openssl" die "${SERVER_DEBS[@]}"

say "ready"
