# The README's two commands: `make run` (Baton in solo mode) and `make test` (every test).
# Each installs what is missing first: Debian/Ubuntu packages, the Rust target, tauri-driver, npm packages.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := run

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# What building the app needs (Tauri on WebKitGTK; keyring over D-Bus), and a colour emoji font so
# customers' emoji show as emoji, not boxes.
APT_BUILD := build-essential pkg-config libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev \
             librsvg2-dev libssl-dev libdbus-1-dev fonts-noto-color-emoji
# What the tests need: a headless display and D-Bus session, WebKit's WebDriver, a notification server,
# a keychain, a C cross-compiler so the Android check can build SQLite and ring's C parts, and Python's
# venv for Schemathesis (installed from PyPI into target/), and PostgreSQL (the store suite starts its
# own server in a temporary directory).
APT_TEST := xvfb xauth dbus-x11 webkit2gtk-driver dunst libnotify-bin gnome-keyring gcc-aarch64-linux-gnu \
            python3-venv chromium postgresql
ANDROID := aarch64-linux-android
ANDROID_ENV := CC_aarch64_linux_android=aarch64-linux-gnu-gcc AR_aarch64_linux_android=aarch64-linux-gnu-ar

.PHONY: run test bench deps-build deps-test toolchain ui e2e-deps lint unit android api-fuzz botpress browser e2e

## make run: build Baton and start it in solo mode (the hub runs inside the app).
run: deps-build ui
	cargo run --release --bin baton

## make test: every check CI runs, in order of speed.
test: deps-build deps-test ui lint unit android api-fuzz botpress browser e2e
	@echo "make test: all suites passed"

## make bench: the hub's ingest benchmark, the device cache's apply/search/open benchmarks, and a
## Botpress burst into the real app's built-in hub (release builds; each prints its figures beside a
## baseline measured in the same run).
bench: deps-build deps-test ui
	cargo bench -p baton-hub --bench ingest --features test-postgres
	cargo bench -p baton-core --bench cache
	# Apart: built together, the app would get the hub's web-app feature and not be the shipped binary.
	cargo build --release -p baton-hub
	cargo build --release -p baton
	xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- node tests/e2e/bench-solo-burst.mjs
	cd tests/browser && npm install --no-audit --no-fund --loglevel=error && npm run bench

deps-build: toolchain
	@missing=$$(for p in $(APT_BUILD); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

deps-test: toolchain
	@missing=$$(for p in $(APT_TEST); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi
	@rustup target list --installed | grep -qx $(ANDROID) || rustup target add $(ANDROID)
	@command -v tauri-driver >/dev/null || [ -x "$$HOME/.cargo/bin/tauri-driver" ] || cargo install tauri-driver --locked
	cd tests/e2e && npm install --no-audit --no-fund --loglevel=error

toolchain:
	@command -v cargo >/dev/null || { echo "Rust is missing: install it with rustup (https://rustup.rs), then rerun."; exit 1; }
	@command -v npm >/dev/null || { echo "installing Node.js"; $(SUDO) apt-get update -qq; $(SUDO) apt-get install -y -qq nodejs npm; }

## The inbox UI, built into ui/dist (the app embeds it at compile time).
ui:
	cd ui && npm install --no-audit --no-fund --loglevel=error && npm run build

lint: ui
	cargo fmt --all -- --check
	cd ui && npm run check && npm test
	cargo clippy --workspace --all-targets -- -D warnings

unit: ui
	cargo build --workspace --bins
	cargo test --workspace

## Mobile builds must not rot: the core and the app's library type-check for Android.
android: ui
	$(ANDROID_ENV) cargo check --lib --target $(ANDROID) -p baton-core -p baton

## Schemathesis against the bot API's served OpenAPI document, on a real hub.
api-fuzz: unit
	tests/api-fuzz.sh

## The inbox in Chromium (Debian's; Playwright never downloads a browser): the phone, tablet and
## desktop layouts measured box by box on sample data, then the whole inbox against a real hub
## serving it at /app/, at desktop and phone sizes. Screenshots in target/layout and target/browser.
browser: unit
	cd ui && npm run test:layout
	cd tests/browser && npm install --no-audit --no-fund --loglevel=error && npm test

## The Botpress integration (integrations/botpress): type-checked, and its tests against a real hub.
botpress: unit
	cd integrations/botpress && npm install --no-audit --no-fund --loglevel=error && npx tsc --noEmit && npx vitest run

## Under Xvfb and a private D-Bus session: the real keychain, and the real app through tauri-driver.
e2e: unit
	xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- tests/e2e/session.sh
