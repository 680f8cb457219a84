#!/usr/bin/env bash
# The layers of src/ (see src/lib.rs) depend only downwards:
#   api, fdw  ->  pg  ->  plan  ->  options  ->  codec, kafka, registry  ->  error
# Pure layers (plan, options, codec, kafka, registry, error) never use pgrx; the Kafka
# client, the Schema Registry client and the codecs use no other layer of the crate but
# `error`. Fails listing each offending line. Run by tests/run.sh (layer 1); cheap enough
# to run by hand.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../src"

# layer: the crate modules it may use
declare -A allowed=(
    [error]=""
    [kafka]="error"
    [registry]="error"
    [codec]="error"
    [options]="error codec kafka registry"
    [plan]="error codec kafka registry options"
    [pg]="error codec kafka registry options plan"
    [fdw]="error codec kafka registry options plan pg"
    [api]="error codec kafka registry options plan pg"
)
pure="error kafka registry codec options plan"

failures=0
fail() {
    echo "layout: $1" >&2
    failures=$((failures + 1))
}

for layer in "${!allowed[@]}"; do
    files=$(find . -path "./$layer.rs" -o -path "./$layer/*.rs" | sed 's|^\./||' | sort)
    [[ -n "$files" ]] || fail "layer $layer has no source"
    for file in $files; do
        # Every `crate::<module>` path, in use declarations and inline alike (grouped
        # `crate::{…}` imports would hide modules from this check, so they are refused).
        if grep -nq 'crate::{' "$file"; then
            fail "src/$file:$(grep -n 'crate::{' "$file" | head -1 | cut -d: -f1): name the module (crate::module::…), not crate::{…}"
        fi
        while IFS=: read -r line module; do
            [[ " ${allowed[$layer]} $layer " == *" $module "* ]] ||
                fail "src/$file:$line: $layer uses crate::$module"
        done < <(grep -no 'crate::[a-z_]*' "$file" | sed 's/crate:://')
        if [[ " $pure " == *" $layer "* ]] && grep -nq '\bpgrx\b' "$file"; then
            fail "src/$file:$(grep -n '\bpgrx\b' "$file" | head -1 | cut -d: -f1): $layer is pure Rust but uses pgrx"
        fi
    done
done

# No module outside the layers: a new top-level file must be placed in one.
for entry in *; do
    name="${entry%.rs}"
    [[ "$name" == lib ]] || [[ -n "${allowed[$name]+set}" ]] || fail "src/$entry is in no layer"
done

if ((failures)); then
    echo "layout: $failures violation(s)" >&2
    exit 1
fi
echo "layout: every module depends only on the layers below it"
