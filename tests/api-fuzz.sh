#!/usr/bin/env bash
# Schemathesis (from PyPI, in a venv under target/) against the bot API's OpenAPI document as a
# real baton-hub serves it: generated and mutated requests, every check — no 5xx, and every
# response's status, content type and body as the document says — but positive_data_acceptance:
# a payload's shape per message type (`{"text"}` for text, …) is checked by the hub, not written
# into the document, so a schema-valid `{"type":"text","payload":{}}` is rightly refused.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hub_bin="$root/target/debug/baton-hub"
venv="$root/target/venv-schemathesis"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis>=4,<5"
fi

data=$(mktemp -d)
hub=""
cleanup() {
  [ -n "$hub" ] && kill "$hub" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
export BATON_ALLOW_PRIVATE_URLS=1
# Events go nowhere (a closed port): the run is about what the bot API answers.
creds=$("$hub_bin" bot add --data "$data" --name fuzz --events-url http://127.0.0.1:9/events)
token=$(sed -n 's/^token: //p' <<<"$creds")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$hub_bin" serve --data "$data" --listen "127.0.0.1:$port" >"$data/hub.log" 2>&1 &
hub=$!

status=0
"$venv/bin/schemathesis" --no-color run "http://127.0.0.1:$port/bot/v1/openapi.json" \
  --wait-for-schema 20 \
  --header "Authorization: Bearer $token" \
  --checks all \
  --exclude-checks positive_data_acceptance \
  --max-examples 40 \
  --workers 2 \
  --suppress-health-check too_slow,filter_too_much || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- baton-hub log (last 40 lines) ---"
  tail -n 40 "$data/hub.log"
fi
exit "$status"
