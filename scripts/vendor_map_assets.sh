#!/usr/bin/env bash
# Vendor the map page's WebGL scatter plot: regl-scatterplot and its dependencies, bundled by esbuild into
# one classic script (a global `ReglScatterplot`), so the page works when opened from disk, offline.
# Run it to update the committed asset: bash scripts/vendor_map_assets.sh [VERSION]
set -euo pipefail
version=${1:-1.16.0}
esbuild_version=0.28.2
repo=$(cd "$(dirname "$0")/.." && pwd)
dest="$repo/src/mindset/map/assets/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund "regl-scatterplot@$version" "esbuild@$esbuild_version" >/dev/null
cat > entry.js <<'JS'
export { default as createScatterplot, createRenderer } from 'regl-scatterplot';
JS
npx esbuild entry.js --bundle --minify --format=iife --global-name=ReglScatterplot --target=es2019 \
  --legal-comments=none --outfile=regl-scatterplot.bundle.js --log-level=warning

mkdir -p "$dest"
{
  echo "/* regl-scatterplot $version (MIT, Fritz Lekschas) and its dependencies, bundled with esbuild $esbuild_version"
  echo "   by scripts/vendor_map_assets.sh. Licenses: LICENSES.txt beside this file. */"
  cat regl-scatterplot.bundle.js
} > "$dest/regl-scatterplot.js"

# every package inside the bundle, with its version and license text
{
  echo "Third-party code in regl-scatterplot.js (bundled by scripts/vendor_map_assets.sh)"
  echo
  for pkg in $(cd node_modules && ls -d regl-scatterplot @flekschas/* dom-2d-camera camera-2d-simple earcut gl-matrix pub-sub-es regl regl-line 2>/dev/null); do
    [ -f "node_modules/$pkg/package.json" ] || continue
    v=$(node -p "require('./node_modules/$pkg/package.json').version")
    l=$(node -p "require('./node_modules/$pkg/package.json').license")
    echo "=== $pkg $v ($l)"
    lic=$(ls node_modules/$pkg/LICENSE* node_modules/$pkg/license* 2>/dev/null | head -1 || true)
    if [ -n "$lic" ]; then cat "$lic"; else echo "(no license file in the package; package.json says $l)"; fi
    echo
  done
} > "$dest/LICENSES.txt"
node -e "
const fs=require('fs');const v={};for(const p of ['regl-scatterplot','esbuild','regl','pub-sub-es','dom-2d-camera','gl-matrix','earcut','regl-line','@flekschas/utils']){try{v[p]=require('./node_modules/'+p+'/package.json').version}catch(e){}}
fs.writeFileSync('$dest/VERSIONS.json', JSON.stringify(v,null,2)+'\n')"
echo "wrote $dest/regl-scatterplot.js ($(wc -c < "$dest/regl-scatterplot.js") bytes), LICENSES.txt, VERSIONS.json"
