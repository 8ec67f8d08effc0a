#!/bin/sh
# Install this motivnet-edge bundle on a device (POSIX sh, as root).
#
#   sh install.sh              verify the bundle, then install or upgrade; again: no change
#   sh install.sh --rollback   return to the version that was current before the last upgrade
#
# It verifies every file against SHA256SUMS before anything is put into place, installs into
# $PREFIX/<version>_<bundle digest> (a virtual environment from the bundled wheels, no network
# when the bundle holds them all, and the model), checks the model's metadata with the installed
# runtime, then points $PREFIX/current at it (the version before stays as $PREFIX/previous).
# The config is written only where none exists; the service user is created if missing; the
# systemd unit is written and enabled. A failure before the switch removes the half-built
# version and leaves the running one in place.
#
# Environment, for image builders and tests (defaults in brackets): MOTIVNET_PREFIX
# [/opt/motivnet-edge], MOTIVNET_CONF_DIR [/etc/motivnet-edge], MOTIVNET_UNIT_DIR
# [/etc/systemd/system], MOTIVNET_USER [motivnet], MOTIVNET_PYTHON [python3].
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${MOTIVNET_PREFIX:-/opt/motivnet-edge}
CONF_DIR=${MOTIVNET_CONF_DIR:-/etc/motivnet-edge}
UNIT_DIR=${MOTIVNET_UNIT_DIR:-/etc/systemd/system}
SVC_USER=${MOTIVNET_USER:-motivnet}
PYTHON=${MOTIVNET_PYTHON:-python3}
UNIT=motivnet-edge.service
CHANGED=0
BUILDING=""  # a version folder being built: removed if the install stops before it is done
LOCKED=""

say() { echo "motivnet-edge install: $*"; }
die() { echo "motivnet-edge install: error: $*" >&2; exit 1; }

cleanup() {
    if [ -n "$BUILDING" ]; then
        rm -rf "$BUILDING"
        echo "motivnet-edge install: removed the half-built $BUILDING; the current version" \
            "is unchanged" >&2
    fi
    [ -z "$LOCKED" ] || rmdir "$LOCKED" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Replace $2 by the file $1 only when they differ; the new file is renamed into place.
put() {
    if [ -f "$2" ] && cmp -s "$1" "$2"; then rm -f "$1"; return 0; fi
    mv -f "$1" "$2"
    CHANGED=1
}

# Point link $1 at $2 atomically (a new link renamed over the old one).
relink() {
    ln -sfn "$2" "$1.new"
    mv -Tf "$1.new" "$1"
}

systemd_running() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

restart_service() {
    if systemd_running; then
        systemctl daemon-reload
        systemctl restart "$UNIT" || say "warning: $UNIT did not restart: journalctl -u $UNIT"
    fi
}

verify_bundle() {
    [ -f "$HERE/SHA256SUMS" ] || die "$HERE/SHA256SUMS is missing: not a whole bundle"
    if ! bad=$(cd "$HERE" && sha256sum -c --quiet SHA256SUMS 2>&1); then
        die "bundle $HERE failed its check, nothing was installed: $bad"
    fi
    # nothing added beside the listed files (local-wheels/ is the user's own, unlisted)
    extra=$(cd "$HERE" && find . -type f ! -path './local-wheels/*' ! -name SHA256SUMS \
        ! -name manifest.json | sed 's#^\./##' | while read -r f; do
            cut -c67- SHA256SUMS | grep -Fxq "$f" || echo "$f"; done)
    [ -z "$extra" ] || die "bundle $HERE holds files SHA256SUMS does not list: $extra"
}

rollback() {
    prev=$(readlink "$PREFIX/previous" 2>/dev/null) || die "no previous version in $PREFIX"
    cur=$(readlink "$PREFIX/current" 2>/dev/null || true)
    [ -f "$PREFIX/$prev/.complete" ] || die "previous version $PREFIX/$prev is incomplete"
    relink "$PREFIX/current" "$prev"
    [ -n "$cur" ] && relink "$PREFIX/previous" "$cur"
    say "rolled back: current is $prev (was $cur)"
    restart_service
}

build_version() {
    dest=$1
    BUILDING=$dest
    rm -rf "$dest"
    mkdir -p "$dest"
    # the system's site-packages stay visible behind the venv's own: the camera bindings
    # come from the OS (python3-picamera2 on Raspberry Pi OS, python3-gi for GStreamer);
    # every package the bundle brings is installed into the venv all the same
    "$PYTHON" -m venv --system-site-packages "$dest/venv" || \
        die "$PYTHON -m venv failed (install python3-venv)"
    have=$("$dest/venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [ "$have" = "$PYTHON_VERSION" ] || \
        die "the bundle's wheels are for Python $PYTHON_VERSION ($OS), $PYTHON here is" \
            "$have: build the bundle with --os for this device's OS (motivnet-edge bundle" \
            "--help lists them) or --python $have"
    req="motivnet-edge==$VERSION"
    [ -n "$EXTRA" ] && req="motivnet-edge[$EXTRA]==$VERSION"
    set -- --find-links "$HERE/wheels"
    [ -d "$HERE/local-wheels" ] && set -- "$@" --find-links "$HERE/local-wheels"
    [ "$WHEELS" = all ] && set -- "$@" --no-index
    if [ -n "$LOCAL_PACKAGE" ]; then  # the engine the registry lacks: the vendor's wheel
        ls "$HERE/local-wheels/"*.whl >/dev/null 2>&1 || \
            die "this target needs $LOCAL_PACKAGE, which is not in the bundle: put the" \
                "vendor's wheel into $HERE/local-wheels/ (the README says where to get it)"
        set -- "$@" "$LOCAL_PACKAGE"
    fi
    say "installing $req into $dest"
    "$dest/venv/bin/python" -m pip install -q --disable-pip-version-check --ignore-installed \
        "$@" "$req" \
        || die "pip could not install $req"
    cp -R "$HERE/model" "$dest/model"
    cp "$HERE/install.sh" "$HERE/bundle.env" "$HERE/SHA256SUMS" "$dest/"
    # every file was checked against SHA256SUMS above: the model's metadata, read by the
    # installed runtime, is what is left to check
    "$dest/venv/bin/motivnet-edge" verify --model-only "$HERE" || \
        die "the installed runtime refused the model"
    touch "$dest/.complete"
    BUILDING=""
}

case "${1:-}" in
    --rollback) rollback; exit 0 ;;
    "") ;;
    *) die "unknown argument $1 (none, or --rollback)" ;;
esac

verify_bundle
# shellcheck disable=SC1091
. "$HERE/bundle.env"  # VERSION TARGET PLATFORM OS PYTHON_VERSION EXTRA ARTIFACT WHEELS
# LOCAL_PACKAGE, checked against SHA256SUMS above
NAME="${VERSION}_$(sha256sum "$HERE/SHA256SUMS" | cut -c1-12)"

mkdir -p "$PREFIX"
mkdir "$PREFIX/.lock" 2>/dev/null || die "another install is running ($PREFIX/.lock exists)"
LOCKED="$PREFIX/.lock"
if [ -f "$PREFIX/$NAME/.complete" ]; then
    say "$NAME is installed already"
else
    build_version "$PREFIX/$NAME"
    CHANGED=1
fi

if ! id "$SVC_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
        "$SVC_USER"
    getent group video >/dev/null 2>&1 && usermod -a -G video "$SVC_USER"
    say "created the service user $SVC_USER"
    CHANGED=1
fi
GROUP=$(id -gn "$SVC_USER")

old=$(readlink "$PREFIX/current" 2>/dev/null || true)
if [ "$old" != "$NAME" ]; then
    relink "$PREFIX/current" "$NAME"
    [ -n "$old" ] && relink "$PREFIX/previous" "$old"
    CHANGED=1
fi
if [ "$TARGET" = rpi ] && ! "$PREFIX/current/venv/bin/python" -c 'import picamera2' \
        >/dev/null 2>&1; then
    say "note: a camera module (libcamera:0 in the config) needs picamera2: apt install" \
        "python3-picamera2 (USB cameras, streams and GStreamer do not)"
fi
if [ "$TARGET" = rockchip ]; then  # the NPU's runtime library comes with the board's image
    why=$("$PREFIX/current/venv/bin/python" -c 'from motivnet_edge.targets.engines.rknn import \
RknnEngine; print(RknnEngine.unavailable() or "")' 2>/dev/null || true)
    [ -n "$why" ] && say "note: the daemon cannot run the RKNN model until this is mended:" \
        "$why"
fi
# keep the current and the previous version, remove older ones
prev=$(readlink "$PREFIX/previous" 2>/dev/null || true)
for d in "$PREFIX"/*_*; do
    [ -d "$d" ] || continue
    b=$(basename "$d")
    [ "$b" = "$NAME" ] || [ "$b" = "$prev" ] || { rm -rf "$d"; say "removed old version $b"; }
done

fill() {
    sed -e "s#@PREFIX@#$PREFIX#g" -e "s#@CONF_DIR@#$CONF_DIR#g" -e "s#@USER@#$SVC_USER#g" "$1"
}
if [ ! -e "$CONF_DIR/config.yaml" ]; then
    mkdir -p "$CONF_DIR"
    fill "$HERE/config.yaml" > "$CONF_DIR/.config.yaml.new"
    chmod 0640 "$CONF_DIR/.config.yaml.new"
    chgrp "$GROUP" "$CONF_DIR/.config.yaml.new"
    mv -f "$CONF_DIR/.config.yaml.new" "$CONF_DIR/config.yaml"
    say "wrote $CONF_DIR/config.yaml: set the camera and the broker there"
    CHANGED=1
fi

mkdir -p "$UNIT_DIR"
fill "$HERE/motivnet-edge.service" > "$UNIT_DIR/.$UNIT.new"
chmod 0644 "$UNIT_DIR/.$UNIT.new"
put "$UNIT_DIR/.$UNIT.new" "$UNIT_DIR/$UNIT"
if systemd_running; then
    systemctl daemon-reload
    systemctl enable "$UNIT" >/dev/null 2>&1
    [ "$CHANGED" = 1 ] && restart_service
else  # an image being built, a chroot: enable by the link systemctl would make
    mkdir -p "$UNIT_DIR/multi-user.target.wants"
    [ -L "$UNIT_DIR/multi-user.target.wants/$UNIT" ] || {
        ln -s "$UNIT_DIR/$UNIT" "$UNIT_DIR/multi-user.target.wants/$UNIT"; CHANGED=1; }
fi

if [ "$CHANGED" = 1 ]; then
    say "installed $NAME for target $TARGET (current: $PREFIX/current${old:+, previous: $old})"
else
    say "nothing changed: $NAME is installed and current"
fi
