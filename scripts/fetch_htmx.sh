#!/usr/bin/env bash
# Fetch the pinned htmx release from the npm registry and install it into the static folder, but
# only if its SHA-384 matches the pinned value (the same value base.html uses for SRI).
# The file is not committed: pages run inside customers' iframes and offline, so we serve our own
# copy, and the pin keeps a tampered or different build from ever being served.
set -euo pipefail

version="2.0.11"
sri="sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg"
dest="portal/static/vendor/htmx.min.js"

actual_sri() { printf 'sha384-%s' "$(openssl dgst -sha384 -binary "$1" | base64 -w0)"; }

if [ -f "$dest" ] && [ "$(actual_sri "$dest")" = "$sri" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "error: npm is needed once to fetch htmx $version (apt-get install npm, or install Node.js)." >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
( cd "$work" && npm pack "htmx.org@$version" --silent >/dev/null )
tar -xzf "$work/htmx.org-$version.tgz" -C "$work" package/dist/htmx.min.js
got=$(actual_sri "$work/package/dist/htmx.min.js")
if [ "$got" != "$sri" ]; then
  echo "error: htmx $version from the registry has hash $got, expected $sri; refusing to use it." >&2
  exit 1
fi
mkdir -p "$(dirname "$dest")"
cp "$work/package/dist/htmx.min.js" "$dest"
echo "htmx $version installed into $dest (SHA-384 verified)"
