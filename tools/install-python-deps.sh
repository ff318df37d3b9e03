#!/usr/bin/env bash
# Sets up .build/python, a virtual environment with the Python packages the tests drive
# Kairos with: Segment's own SDK (analytics-python), used unmodified against the gateway, and
# schemathesis, which tests the server against docs/openapi.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.build/python
packages=("analytics-python==1.4.post1" "schemathesis==4.32.5")

if [ ! -x "$venv/bin/python3" ]; then
    echo "Creating the Python environment for the tests in $venv"
    mkdir -p .build
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python3" -c "import analytics" >/dev/null 2>&1 || [ ! -x "$venv/bin/schemathesis" ]; then
    echo "Installing Python packages: ${packages[*]}"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
fi
