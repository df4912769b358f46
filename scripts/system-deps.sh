#!/usr/bin/env bash
# Install the OS packages that the test suite and the demo use, and only those that are missing.
#
#   postgresql         initdb / postgres: the Postgres storage backend's tests
#   mosquitto(-clients) the MQTT broker of the voice services' tests
#   espeak-ng          offline text-to-speech (voice tests, `make demo`)
#   sox                audio rate conversion
#   graphviz           the `dot` program: `trioworks dag graph --format svg|png`
#
# Idempotent and quick when everything is there (no apt call at all). It never fails the build:
# when it cannot install (not root and no passwordless sudo, no apt-get, no network) it says what
# is missing and exits 0; the tests that need a missing program then skip and name it
# (set TRIOWORKS_REQUIRE_SERVICES=1 to make them fail instead).
#
# Services are never started system-wide: the tests start throwaway instances of their own.
set -uo pipefail

say() { printf 'system-deps: %s\n' "$*" >&2; }

# A program is "present" if it is on PATH or where Debian puts it outside a normal user's PATH
# (/usr/sbin for mosquitto, /usr/lib/postgresql/<version>/bin for the Postgres server).
have() {
    command -v "$1" >/dev/null 2>&1 && return 0
    local dir
    for dir in /usr/sbin /sbin /usr/local/sbin; do
        [ -x "$dir/$1" ] && return 0
    done
    return 1
}

have_postgres_server() {
    local tool bindir
    for tool in initdb postgres; do
        have "$tool" || {
            for bindir in /usr/lib/postgresql/*/bin; do
                [ -x "$bindir/$tool" ] && continue 2
            done
            return 1
        }
    done
    return 0
}

missing=()
have_postgres_server || missing+=(postgresql)
have mosquitto || missing+=(mosquitto)
have mosquitto_pub || missing+=(mosquitto-clients)
have espeak-ng || missing+=(espeak-ng)
have sox || missing+=(sox)
have dot || missing+=(graphviz)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

say "missing: ${missing[*]}"

if ! command -v apt-get >/dev/null 2>&1; then
    say "apt-get not available; install ${missing[*]} by hand. Tests that need them will be skipped."
    exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo_cmd=(sudo -n)
    else
        say "not root and no passwordless sudo; run: sudo apt-get install ${missing[*]}"
        say "tests that need them will be skipped."
        exit 0
    fi
fi

# Keep Debian's maintainer scripts from starting system-wide postgresql/mosquitto services: the
# tests start their own on free ports. Docker images usually ship this policy file already; we add
# it only for the duration of the install, and only if it was not there.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
    if printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null 2>&1 &&
        "${sudo_cmd[@]}" chmod 755 "$policy"; then
        added_policy=1
    fi
fi
cleanup() {
    if [ "$added_policy" -eq 1 ]; then
        "${sudo_cmd[@]}" rm -f "$policy"
    fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
say "apt-get update"
if ! "${sudo_cmd[@]}" apt-get update -qq >/dev/null; then
    say "apt-get update failed; tests that need ${missing[*]} will be skipped."
    exit 0
fi
say "apt-get install ${missing[*]}"
if ! "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    say "apt-get install failed; tests that need ${missing[*]} will be skipped."
    exit 0
fi
say "installed ${missing[*]}"
exit 0
