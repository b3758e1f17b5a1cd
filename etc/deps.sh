#!/bin/sh
# deps.sh: installs the Debian packages listed in etc/deps.txt that are
# missing; does nothing (quickly) when all are present.  Needs root.
set -eu
cd "$(dirname "$0")"
pkgs=$(sed -e 's/#.*//' deps.txt | tr -s ' \t' '\n' | grep -v '^$')
missing=""
for p in $pkgs; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "deps: all $(echo $pkgs | wc -w) packages present"
  exit 0
fi
echo "deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: need root to install packages (run: sudo make deps)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $missing
