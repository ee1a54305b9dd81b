#!/bin/sh
# evsed bundle hook (declared in manifest.raucm: [hooks] filename=hook.sh, hooks=install-check).
#
# RAUC runs it from the mounted bundle as "<bundle>/hook.sh install-check" before anything is
# written. Exit 0 accepts the bundle; exit 10 rejects it, and RAUC reports the last line this
# script wrote to stderr as the reason. Lines on stdout go to the RAUC service's journal.
#
# A bundle that declares install-check REPLACES RAUC's own compatible check, so this hook
# checks, in order:
#   1. compatible: RAUC_MF_COMPATIBLE (bundle) must equal RAUC_SYSTEM_COMPATIBLE (system.conf).
#   2. no downgrade: RAUC_MF_VERSION must not be older than VERSION_ID in /etc/os-release of
#      the running system (the image build writes the bundle version there). Equal versions
#      are accepted (reinstall). A forced bundle skips this check only; see below.
#   3. free space: the data partition (/data) must have EVSED_MIN_FREE_MIB MiB available.
#
# Versions: digits separated by dots, optionally "-prerelease" and "+build":
# 1.4.0 < 1.4.1 < 1.10.0; 1.5.0-rc1 < 1.5.0; prereleases compare as plain strings; the
# "+build" part is ignored. Anything else is rejected unless the bundle is forced.
#
# Forcing a downgrade (any one of these in the bundle):
#   - [meta.evsed] allow-downgrade=true in the manifest. RAUC >= 1.13 exports it to hooks as
#     RAUC_META_EVSED_ALLOW_DOWNGRADE; older RAUC on the device does not, so the hook also
#     reads manifest.raucm from the bundle. Note: RAUC < 1.9 drops [meta.*] sections when it
#     creates the bundle, so with Debian's rauc 1.8 as bundler use the marker file instead.
#   - a file named evsed-allow-downgrade at the top of the bundle content directory.
#
# Environment knobs (set them in the RAUC service's environment; tests use them):
#   EVSED_OS_RELEASE     file with VERSION_ID       (default /etc/os-release)
#   EVSED_DATA_DIR       data partition mount point (default /data)
#   EVSED_MIN_FREE_MIB   required free space, MiB   (default 64)
#
# POSIX sh: it runs on busybox as well as dash or bash.

set -u

REJECT=10

os_release=${EVSED_OS_RELEASE:-/etc/os-release}
data_dir=${EVSED_DATA_DIR:-/data}
min_free_mib=${EVSED_MIN_FREE_MIB:-64}
bundle_dir=$(dirname "$0")

reject() {
    echo "evsed: $*" >&2
    exit "$REJECT"
}

is_true() {
    case "$1" in
        true | True | TRUE | yes | 1) return 0 ;;
        *) return 1 ;;
    esac
}

# VERSION_ID of the running system, without quotes. The file is parsed, never sourced.
running_version() {
    [ -r "$os_release" ] || return 0
    sed -n 's/^VERSION_ID=//p' "$os_release" | tail -n 1 | tr -d "\"'"
}

# Value of KEY in [meta.evsed] of the bundle's manifest, empty if absent.
manifest_meta() {
    [ -r "$bundle_dir/manifest.raucm" ] || return 0
    awk -v key="$1" '
        /^[ \t]*\[/ { section = $0; gsub(/[ \t]/, "", section); next }
        section == "[meta.evsed]" {
            line = $0
            eq = index(line, "=")
            if (eq == 0) next
            k = substr(line, 1, eq - 1); v = substr(line, eq + 1)
            gsub(/^[ \t]+|[ \t]+$/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v)
            if (k == key) value = v
        }
        END { print value }
    ' "$bundle_dir/manifest.raucm"
}

downgrade_allowed() {
    is_true "${RAUC_META_EVSED_ALLOW_DOWNGRADE:-}" && return 0
    is_true "$(manifest_meta allow-downgrade)" && return 0
    [ -e "$bundle_dir/evsed-allow-downgrade" ] && return 0
    return 1
}

# Prints -1, 0 or 1 for A <, =, > B; "invalid" if either is not a version as described above.
compare_versions() {
    awk -v a="$1" -v b="$2" '
        function valid(v) { return v ~ /^[0-9]+(\.[0-9]+)*(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/ }
        function core(v) { sub(/\+.*/, "", v); sub(/-.*/, "", v); return v }
        function pre(v) { sub(/\+.*/, "", v); if (index(v, "-") == 0) return ""; sub(/^[^-]*-/, "", v); return v }
        BEGIN {
            if (!valid(a) || !valid(b)) { print "invalid"; exit }
            n = split(core(a), x, "."); m = split(core(b), y, ".")
            for (i = 1; i <= (n > m ? n : m); i++) {
                p = (i <= n) ? x[i] + 0 : 0; q = (i <= m) ? y[i] + 0 : 0
                if (p < q) { print -1; exit }
                if (p > q) { print 1; exit }
            }
            pa = pre(a); pb = pre(b)
            if (pa == pb) { print 0; exit }
            if (pa == "") { print 1; exit }   # a release sorts after its prereleases
            if (pb == "") { print -1; exit }
            print (pa < pb) ? -1 : 1
        }'
}

check_compatible() {
    [ -n "${RAUC_SYSTEM_COMPATIBLE:-}" ] || reject "RAUC_SYSTEM_COMPATIBLE is not set; not called by RAUC?"
    [ "${RAUC_MF_COMPATIBLE:-}" = "$RAUC_SYSTEM_COMPATIBLE" ] ||
        reject "bundle is for '${RAUC_MF_COMPATIBLE:-}', this system is '$RAUC_SYSTEM_COMPATIBLE'"
}

check_version() {
    new=${RAUC_MF_VERSION:-}
    if downgrade_allowed; then
        echo "evsed: downgrade protection overridden by the bundle; installing version '$new'"
        return 0
    fi
    current=$(running_version)
    [ -n "$new" ] || reject "bundle has no version; cannot check for a downgrade"
    [ -n "$current" ] ||
        reject "running version unknown (no VERSION_ID in $os_release); only a forced bundle can be installed"
    case $(compare_versions "$new" "$current") in
        1) echo "evsed: upgrade from $current to $new" ;;
        0) echo "evsed: reinstalling version $new" ;;
        -1) reject "refusing downgrade from $current to $new (the bundle must allow downgrades)" ;;
        *) reject "cannot compare versions '$new' and '$current' (expected e.g. 1.4.2 or 1.5.0-rc1)" ;;
    esac
}

check_free_space() {
    case $min_free_mib in
        '' | *[!0-9]*) reject "EVSED_MIN_FREE_MIB must be a whole number of MiB, not '$min_free_mib'" ;;
    esac
    [ -d "$data_dir" ] || reject "data partition $data_dir is missing"
    # POSIX df -P: second line, fourth column = available 1024-byte blocks.
    free_kib=$(df -Pk "$data_dir" 2>/dev/null | awk 'NR == 2 { print $4 }')
    case $free_kib in
        '' | *[!0-9]*) reject "cannot determine free space on $data_dir" ;;
    esac
    free_mib=$((free_kib / 1024))
    [ "$free_mib" -ge "$min_free_mib" ] ||
        reject "only $free_mib MiB free on $data_dir, need $min_free_mib MiB"
}

case "${1:-}" in
    install-check)
        check_compatible
        check_version
        check_free_space
        exit 0
        ;;
    *)
        echo "evsed: hook called for '${1:-}', which this bundle does not declare" >&2
        exit 1
        ;;
esac
