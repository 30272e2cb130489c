# Sourced by the shims of tests/guides: a guide's command that the test cannot
# run on the real machine is recorded, then done in the machine's sandbox.
# The runner copies the shims to <sandbox>/guide/bin and writes
# <sandbox>/guide/shim.env (GUIDE_ROOT, GUIDE_NGINX, the private RabbitMQ node).
GUIDE_STATE="$(cd "$(dirname "$0")/.." && pwd)"
set -a
. "$GUIDE_STATE/shim.env"
set +a

# record NAME ARGS...: one line per call (bash-quoted) in calls.log
record() {
    local line
    printf -v line '%q ' "$@"
    printf '%s\n' "${line% }" >> "$GUIDE_STATE/calls.log"
}

shim_error() {
    printf '%s (guide shim): %s\n' "$(basename "$0")" "$*" >&2
    exit 64
}
