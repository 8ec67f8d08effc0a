#!/bin/sh
# Stage a motivnet-edge bundle into an image's root file system, to be installed on first boot.
#
#   sh stage-into-image.sh ROOTFS BUNDLE.tar.gz
#
# pi-gen: call it from a stage's 00-run.sh with "${ROOTFS_DIR}"; rpi-image-gen: from a layer's
# post-build hook with the image's root; a Jetson root file system: on Linux_for_Tegra/rootfs
# before flashing. It copies the bundle, firstboot.sh and the oneshot unit into ROOTFS and
# enables the unit; on first boot the unit runs the bundle's install.sh and disables itself.
set -eu
[ $# -eq 2 ] || { echo "usage: sh stage-into-image.sh ROOTFS BUNDLE.tar.gz" >&2; exit 2; }
ROOT=$1
BUNDLE=$2
HERE=$(cd "$(dirname "$0")" && pwd)
[ -d "$ROOT/etc" ] || { echo "error: $ROOT is not a root file system (no etc/)" >&2; exit 1; }
case "$BUNDLE" in *.tar.gz) ;; *) echo "error: $BUNDLE is not a .tar.gz bundle" >&2; exit 1;; esac
[ -f "$BUNDLE" ] || { echo "error: $BUNDLE does not exist" >&2; exit 1; }
DEST="$ROOT/var/lib/motivnet-edge-firstboot"
UNITS="$ROOT/etc/systemd/system"
mkdir -p "$DEST" "$UNITS/multi-user.target.wants"
cp "$BUNDLE" "$DEST/.bundle.new" && mv -f "$DEST/.bundle.new" "$DEST/$(basename "$BUNDLE")"
cp "$HERE/firstboot.sh" "$DEST/firstboot.sh"
cp "$HERE/motivnet-edge-firstboot.service" "$UNITS/motivnet-edge-firstboot.service"
ln -sfn /etc/systemd/system/motivnet-edge-firstboot.service \
    "$UNITS/multi-user.target.wants/motivnet-edge-firstboot.service"
echo "staged $(basename "$BUNDLE") into $ROOT: installed on first boot"
