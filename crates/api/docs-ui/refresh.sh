#!/usr/bin/env bash
# Fetches the pinned swagger-ui-dist (package.json, package-lock.json) from npm and compares the
# files the /docs page needs with the copies in dist/, which the build bundles into the binary.
#
#   refresh.sh           check: fail unless dist/ holds exactly the pinned package's files
#   refresh.sh --update  copy them into dist/ and rewrite SHA256SUMS (after changing the pin)
set -euo pipefail
cd "$(dirname "$0")"
files=(swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp package.json package-lock.json "$work/"
# `npm ci` installs what the lock file names and checks each tarball's integrity hash.
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --silent)
from="$work/node_modules/swagger-ui-dist"
if [ "${1:-}" = "--update" ]; then
  mkdir -p dist
  for f in "${files[@]}"; do cp "$from/$f" "dist/$f"; done
  (cd dist && sha256sum "${files[@]}") > SHA256SUMS
  echo "dist/ now holds swagger-ui-dist $(node -p "require('$from/package.json').version")"
else
  here=$(pwd)
  # The package on npm has the recorded hashes, and so do the committed copies.
  (cd "$from" && sha256sum --quiet -c "$here/SHA256SUMS") ||
    { echo "swagger-ui-dist on npm differs from SHA256SUMS: run refresh.sh --update" >&2; exit 1; }
  (cd dist && sha256sum --quiet -c ../SHA256SUMS) ||
    { echo "dist/ differs from SHA256SUMS: run refresh.sh --update" >&2; exit 1; }
  echo "dist/ matches swagger-ui-dist as pinned in package-lock.json"
fi
