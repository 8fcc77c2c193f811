#!/usr/bin/env bash
# Vendor the `mindset ui` page's front-end libraries: preact (components), htm (JSX-like tagged templates,
# no build step for the page's own code) and uPlot (the heal job's live loss chart), bundled by esbuild into one classic script (a global `UiVendor`),
# so the page works offline and needs nothing from the network.
# Run it to update the committed asset: bash scripts/vendor_ui_assets.sh [PREACT_VERSION] [HTM_VERSION] [UPLOT_VERSION]
set -euo pipefail
preact_version=${1:-10.29.8}
htm_version=${2:-3.1.1}
uplot_version=${3:-1.6.32}
esbuild_version=0.28.2
repo=$(cd "$(dirname "$0")/.." && pwd)
dest="$repo/src/mindset/ui/assets/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund "preact@$preact_version" "htm@$htm_version" "uplot@$uplot_version" "esbuild@$esbuild_version" >/dev/null
cat > entry.js <<'JS'
export { h, render, Fragment } from 'preact';
export { useState, useEffect, useMemo, useCallback, useRef } from 'preact/hooks';
export { html } from 'htm/preact';
export { default as uPlot } from 'uplot';
JS
npx esbuild entry.js --bundle --minify --format=iife --global-name=UiVendor --target=es2019 \
  --legal-comments=none --outfile=ui-vendor.bundle.js --log-level=warning

mkdir -p "$dest"
{
  echo "/* preact $preact_version (MIT), htm $htm_version (Apache-2.0) and uPlot $uplot_version (MIT), bundled with esbuild $esbuild_version"
  echo "   by scripts/vendor_ui_assets.sh. Licenses: LICENSES.txt beside this file. */"
  cat ui-vendor.bundle.js
} > "$dest/ui-vendor.js"
cp node_modules/uplot/dist/uPlot.min.css "$dest/uplot.css"

{
  echo "Third-party code in ui-vendor.js (bundled by scripts/vendor_ui_assets.sh)"
  echo
  for pkg in preact htm uplot; do
    v=$(node -p "require('./node_modules/$pkg/package.json').version")
    l=$(node -p "require('./node_modules/$pkg/package.json').license")
    echo "=== $pkg $v ($l)"
    lic=$(ls node_modules/$pkg/LICENSE* node_modules/$pkg/license* 2>/dev/null | head -1 || true)
    if [ -n "$lic" ]; then cat "$lic"; else echo "(no license file in the package; package.json says $l)"; fi
    echo
  done
} > "$dest/LICENSES.txt"
node -e "
const fs=require('fs');const v={};for(const p of ['preact','htm','uplot','esbuild']){v[p]=require('./node_modules/'+p+'/package.json').version}
fs.writeFileSync('$dest/VERSIONS.json', JSON.stringify(v,null,2)+'\n')"
echo "wrote $dest/ui-vendor.js ($(wc -c < "$dest/ui-vendor.js") bytes), uplot.css, LICENSES.txt, VERSIONS.json"
