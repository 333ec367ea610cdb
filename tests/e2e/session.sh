#!/usr/bin/env bash
# The tests that need a desktop session. Run inside `xvfb-run -a dbus-run-session --` (make test
# does): unlocks a throwaway keyring, then checks the real keychain and drives the real app.
set -euo pipefail
cd "$(dirname "$0")"

# A fresh keyring in a temp dir, so a developer's own keyring is never touched or needed.
keyring_home=$(mktemp -d)
trap 'rm -rf "$keyring_home"' EXIT
eval "$(echo -n baton-test | XDG_DATA_HOME="$keyring_home" gnome-keyring-daemon --replace --unlock --components=secrets)"
export GNOME_KEYRING_CONTROL

# The app and the hubs these tests start talk to fakes on loopback (plain http, private addresses).
export BATON_ALLOW_PRIVATE_URLS=1

cargo test -p baton-core --test os_keychain -- --ignored
npm test
