#!/usr/bin/env bash
# Builds the gateway's web page, which the binary embeds (src/web.rs):
#   web/gen/   TypeScript generated from proto/ and google/rpc/error_details.proto (buf generate with
#              the local protoc-gen-es plugin; google-proto-files carries the googleapis protos);
#   web/dist/  index.html, and app.js: web/src + web/gen + Connect's gRPC-Web client, type-checked
#              by tsc and bundled by esbuild.
# The tools come pinned from web/package-lock.json (scripts/web-tools.sh); the output depends only
# on the inputs, so the same inputs give the same bytes.
#
#   scripts/build-web.sh           rebuild web/gen and web/dist in place (after changing proto/ or web/)
#   scripts/build-web.sh --check   build into a temporary folder and fail, naming the files, when the
#                                  committed web/gen or web/dist differ (tests/browser.rs runs this)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-}
bash "$root/scripts/web-tools.sh"
tools="$root/target/web-tools/node_modules"

# Build in a staging folder laid out like web/, beside node_modules, so tsc and esbuild resolve
# packages the normal way and nothing in the output depends on where the repository lives.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -R "$root/web/src" "$stage/src"
cp "$root/web/tsconfig.json" "$stage/"
ln -s "$tools" "$stage/node_modules"

template=$(printf '{"version":"v2","plugins":[{"local":"%s","out":"%s","opt":["target=ts"]}]}' \
  "$tools/.bin/protoc-gen-es" "$stage/gen")
(cd "$root" && "$tools/.bin/buf" generate proto --template "$template")
(cd "$tools/google-proto-files" && "$tools/.bin/buf" generate . --path google/rpc/error_details.proto --template "$template")

"$tools/.bin/tsc" -p "$stage/tsconfig.json"
mkdir -p "$stage/dist"
"$tools/.bin/esbuild" "$stage/src/main.ts" --bundle --minify --format=iife --target=es2022 \
  --charset=utf8 --legal-comments=eof --log-level=warning --outfile="$stage/dist/app.js"
cp "$stage/src/index.html" "$stage/dist/index.html"

if [ "$mode" = "--check" ]; then
  if ! diff -rq "$stage/gen" "$root/web/gen" >&2 || ! diff -rq "$stage/dist" "$root/web/dist" >&2; then
    echo "build-web: the committed web/gen or web/dist is stale (lines above, staging folder first): run scripts/build-web.sh and commit the result" >&2
    exit 1
  fi
  echo "build-web: web/gen and web/dist are up to date"
else
  rm -rf "$root/web/gen" "$root/web/dist"
  cp -R "$stage/gen" "$root/web/gen"
  cp -R "$stage/dist" "$root/web/dist"
  echo "build-web: wrote web/gen and web/dist ($(wc -c <"$root/web/dist/app.js") bytes of app.js)"
fi
