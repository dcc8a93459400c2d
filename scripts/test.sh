#!/usr/bin/env bash
# Installs everything the test suite needs on a new Debian machine with Python 3.11
# (Debian packages, a local virtualenv with otelml and its test extras), then runs
# the whole suite, after ruff (lint and format) and mypy (scripts/typecheck.py). Extra arguments go to
# pytest: `-m fast` runs the fast tier, `-m integration` the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

# mosquitto for the MQTT tests, kcat for the Kafka tests, libpython3.11 for the
# interpreter embedded in the rotel collector the tests feed us from, prometheus
# (with promtool) for the prometheus exporter's and the alert rules' tests,
# chromium for the live page's, prometheus-alertmanager for the alertmanager
# exporter's.
debian_packages=(mosquitto mosquitto-clients kcat libpython3.11 prometheus chromium prometheus-alertmanager)
missing=()
for package in "${debian_packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
# Lint, format and type check first: any failing fails the run.
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
.venv/bin/python scripts/typecheck.py
exec .venv/bin/python -m pytest "$@"
