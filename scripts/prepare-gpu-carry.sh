#!/usr/bin/env bash
# Builds .gpu-carry/ for bench/gpu-check.sh, on a machine with ../shared/assets and Debian's apt (the CPU
# machine). The GPU machine gets neither ../shared nor XGBoost; the device tool carries only ignored paths named
# in its `carry` list, 64 MiB in all with the working tree. So:
#
#   .gpu-carry/assets.tar.gz   tiny-llama2-trained, tiny-llama2-mha, the tokenizer, wikitext2.test.txt (the
#                              perplexity check) and wikitext2.valid.txt (tiny-eval's prompts and items), gzip'd:
#                              58 MiB as files, ~53 MiB packed; bench/gpu-check.sh unpacks it into assets/
#   .gpu-carry/xgboost/        Debian's libxgboost0, libxgboost-dev, libdmlc0 unpacked with dpkg -x (docs removed)
#
# and adds /.gpu-carry/ to .git/info/exclude. Prints the total size (fails if over the limit) and the run call.
#
#   scripts/prepare-gpu-carry.sh            (ASSETS=DIR to take the assets elsewhere than ../shared/assets)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
assets=${ASSETS:-$root/../shared/assets}
carry=$root/.gpu-carry
limit=$((64 * 1024 * 1024))
files=(tiny-llama2-trained tiny-llama2-mha llama2-tokenizer.model wikitext2.test.txt wikitext2.valid.txt)

for f in "${files[@]}"; do
  [[ -e $assets/$f ]] || { echo "prepare-gpu-carry: $assets/$f is missing (set ASSETS=DIR)" >&2; exit 1; }
done

exclude=$(git rev-parse --git-common-dir)/info/exclude
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.gpu-carry/' "$exclude" 2>/dev/null || echo '/.gpu-carry/' >>"$exclude"

rm -rf "$carry"
mkdir -p "$carry/xgboost"
git check-ignore -q .gpu-carry/xgboost || { echo "prepare-gpu-carry: .gpu-carry is not ignored by git" >&2; exit 1; }
echo "prepare-gpu-carry: packing the assets from $assets"
tar -C "$assets" -cf - "${files[@]}" | gzip -6 >"$carry/assets.tar.gz"

echo "prepare-gpu-carry: XGBoost from Debian (apt-get download + dpkg -x)"
debs=$(mktemp -d)
trap 'rm -rf "$debs"' EXIT
(cd "$debs" && apt-get download libxgboost0 libxgboost-dev libdmlc0 >/dev/null) || {
  echo "prepare-gpu-carry: apt-get download failed (run 'apt-get update' first?)" >&2
  exit 1
}
for deb in "$debs"/*.deb; do
  dpkg -x "$deb" "$carry/xgboost"
done
rm -rf "$carry/xgboost/usr/share"
lib=$(dirname "$(find "$carry/xgboost" -name 'libxgboost.so.*' -type f | head -1)")
for need in "$carry/xgboost/usr/include/xgboost/c_api.h" "$lib/libxgboost.so" "$lib/libdmlc.so.0"; do
  [[ -e $need ]] || { echo "prepare-gpu-carry: $need is missing after dpkg -x" >&2; exit 1; }
done

carry_bytes=$(du -sb "$carry" | cut -f1)
tree_bytes=$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
total=$((carry_bytes + tree_bytes))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo
du -sh "$carry"/* | sed 's/^/  /'
echo "prepare-gpu-carry: .gpu-carry $(mib "$carry_bytes") + working tree $(mib "$tree_bytes") = $(mib "$total")" \
     "(limit $(mib "$limit"))"
if ((total >= limit)); then
  echo "prepare-gpu-carry: over the device tool's 64 MiB: the run would be refused" >&2
  exit 1
fi
cat <<'EOF'

Run on the GPU machine (one call, ~8 minutes; results come back under files_at/ from $OUT):
  run(command="bash bench/gpu-check.sh", carry=[".gpu-carry"], timeout_s=600)
EOF
