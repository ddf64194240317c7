#!/usr/bin/env bash
# Installs the Debian packages the project needs to build, test and run,
# when any is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

packages=(build-essential cmake pkg-config clang
          libjansson-dev libsqlite3-dev libssl-dev libcmocka-dev
          libnats-dev nats-server openssl python3 python3-pytest python3-pip python3-venv
          prometheus libmicrohttpd-dev libncurses-dev tmux gdb
          help2man groff-base man-db doxygen)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
