# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this file
# Shared by the scripts in localstack/ (sourced, not run). Callers have already done
# `set -euo pipefail` and changed to the repository root.

VENV=localstack/.venv
REQUIREMENTS=localstack/requirements.txt
# Holds the hash of the requirements the venv was built from; a mismatch rebuilds it.
VENV_STAMP=$VENV/.requirements.sha256
RUN_DIR=localstack/run
PID_FILE=$RUN_DIR/moto.pid
PORT_FILE=$RUN_DIR/moto.port
LOG_FILE=$RUN_DIR/moto.log
MOTO_PORT=${MOTO_PORT:-5000}
PYTHON=${PYTHON:-python3}

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# True if process $1 exists and is not a zombie.
process_alive() {
  local pid=$1 state
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/stat ]]; then
    # Field 3 of /proc/PID/stat is the state; the command name before it is in parentheses.
    state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || true
    [[ $state != Z ]]
  else
    state=$(ps -o stat= -p "$pid" 2>/dev/null) || return 1
    [[ $state != Z* ]]
  fi
}

# True if process $1 is a moto server (guards against a pid reused by another program).
process_is_moto() {
  local pid=$1 cmd
  if [[ -r /proc/$pid/cmdline ]]; then
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  else
    cmd=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
  fi
  [[ $cmd == *moto_server* ]]
}

# Prints the pid of the moto server this project started, if it still runs; fails otherwise.
running_pid() {
  local pid
  [[ -f $PID_FILE ]] || return 1
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  process_alive "$pid" && process_is_moto "$pid" || return 1
  printf '%s\n' "$pid"
}

# Port of the running server, as recorded when it started.
running_port() {
  if [[ -f $PORT_FILE ]]; then cat "$PORT_FILE"; else printf '%s\n' "$MOTO_PORT"; fi
}

# HTTP GET of $1 on 127.0.0.1:$2; prints the body, fails unless the status is 2xx.
http_get() {
  local path=$1 port=$2
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 "http://127.0.0.1:$port$path" 2>/dev/null
  else
    "$PYTHON" - "http://127.0.0.1:$port$path" 2>/dev/null <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.stdout.write(r.read().decode("utf-8", "replace"))
PY
  fi
}

# True if a moto server answers on port $1.
moto_answers() {
  local body
  body=$(http_get /moto-api/ "$1") || return 1
  [[ $body == *"<title>Moto</title>"* ]]
}

# True if anything accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

sha256_of() {
  "$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"
}

# Creates localstack/.venv with the pinned requirements, or rebuilds it when requirements.txt
# changed or the venv's interpreter is gone. Fast no-op when it is up to date.
ensure_venv() {
  local want have=""
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: install Python 3.9 or newer"
  want=$(sha256_of "$REQUIREMENTS")
  if [[ -f $VENV_STAMP ]] && "$VENV/bin/python" -c '' 2>/dev/null; then
    have=$(<"$VENV_STAMP")
  fi
  [[ $want == "$have" ]] && return 0

  say "Installing the emulator tools into $VENV (from $REQUIREMENTS) ..."
  # --clear: a rebuilt venv holds exactly what requirements.txt says, nothing left from before.
  "$PYTHON" -m venv --clear "$VENV" >&2 ||
    die "could not create a virtualenv with '$PYTHON -m venv' (on Debian/Ubuntu: apt-get install python3-venv)"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
    -r "$REQUIREMENTS" >&2 || die "pip install -r $REQUIREMENTS failed"
  printf '%s\n' "$want" >"$VENV_STAMP"
}

# Refuses to go on if any of the ports after $1 is taken on 127.0.0.1; $1 names the variables
# that choose them.
refuse_taken_ports() {
  local variables=$1 port
  shift
  for port in "$@"; do
    if port_in_use "$port"; then
      die "port $port on 127.0.0.1 is taken (another run?); choose others with $variables"
    fi
  done
}

# Runs localstack/dev.sh in the background (output in $1), stops it when the calling script
# exits, and waits up to $2 seconds (cargo build included) for the gateway's /health on $PORT;
# shows the end of the log and exits if it does not come up.
STACK_PID=""
start_stack() {
  local log=$1 timeout=$2 deadline
  mkdir -p "$RUN_DIR"
  localstack/dev.sh >"$log" 2>&1 &
  STACK_PID=$!
  trap stop_stack EXIT
  deadline=$((SECONDS + timeout))
  until http_get /health "${PORT:?}" >/dev/null; do
    if ! kill -0 "$STACK_PID" 2>/dev/null; then
      say "the stack exited during start-up; last lines of $log:"
      tail -n 30 "$log" >&2
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      say "the gateway did not answer on port $PORT within ${timeout}s; last lines of $log:"
      tail -n 30 "$log" >&2
      exit 1
    fi
    sleep 0.5
  done
}

# shellcheck disable=SC2317  # run by the EXIT trap of start_stack
stop_stack() {
  [[ -n $STACK_PID ]] || return 0
  kill -TERM "$STACK_PID" 2>/dev/null || true
  wait "$STACK_PID" 2>/dev/null || true
}
