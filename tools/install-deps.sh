#!/usr/bin/env bash
# Installs the Debian packages Kairos needs when they are missing, and checks for Swift.
# Usage: tools/install-deps.sh PACKAGE...
set -euo pipefail

missing=()
for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "Installing Debian packages: ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "error: no 'swift' on PATH. Kairos needs a Swift 6.1 or newer toolchain for Linux" >&2
    echo "       (put its usr/bin on PATH, e.g. export PATH=/opt/swift/usr/bin:\$PATH)." >&2
    exit 1
fi
