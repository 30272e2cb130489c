#!/usr/bin/env bash
# Set this machine up (tools/setup.sh: apt packages, RabbitMQ started, .venv)
# and run the end-to-end demo (tools/demo.py). Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup.sh
exec .venv/bin/python tools/demo.py "$@"
