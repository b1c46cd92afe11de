#!/bin/sh
# Packs the Node.js package with its addon (`make node`, `npm pack`) and
# installs the tarball offline into a fresh project outside the repository,
# then requires it there with no environment variable and no library path:
# the addon has libmmsb linked in. Skipped, saying so, without node and npm.
set -eu
build=${1:-build}
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node_install_check: node or npm is missing: the npm install is not checked"
    [ "${MMSB_REQUIRE_NODE:-0}" = 1 ] && ! command -v node >/dev/null 2>&1 && exit 1
    exit 0
fi
unset MMSB_NODE_ADDON LD_LIBRARY_PATH
stage=$(mktemp -d "${TMPDIR:-/tmp}/mmsb-node-XXXXXX")
trap 'rm -rf "$stage"' EXIT

make --no-print-directory node BUILD="$build" >/dev/null
(cd "$stage" && npm pack --silent "$OLDPWD/ffi/node" >/dev/null)
mkdir "$stage/app"
(cd "$stage/app" && npm init -y >/dev/null && \
    npm install --offline --no-audit --no-fund --silent "$stage"/mmsb-*.tgz >/dev/null)
(cd "$stage/app" && node - <<'JS'
const fs = require('fs');
const os = require('os');
const path = require('path');
const mmsb = require('mmsb');
const where = require.resolve('mmsb');
if (!where.includes(path.join('node_modules', 'mmsb'))) throw new Error(`mmsb came from ${where}`);
if (mmsb.version() !== require('mmsb/package.json').version) throw new Error('versions differ');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsb-node-app-'));
const e = new mmsb.Engine(path.join(dir, 'store'), { flags: mmsb.OPEN_CREATE });
const page = e.pageCreate(64);
e.write(page, 0, 'installed');
e.close();
const again = new mmsb.Engine(path.join(dir, 'store'));
if (again.read(page, 0, 9).toString() !== 'installed') throw new Error('the bytes did not come back');
again.close();
fs.rmSync(dir, { recursive: true });
console.log(`node_install_check: mmsb ${mmsb.version()} from ${path.dirname(where)}`);
JS
)
echo "node_install_check: the npm package installs offline and runs with its addon"
