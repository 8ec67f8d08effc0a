#!/bin/sh
# First boot of an image that holds a motivnet-edge bundle: install it, then disable this unit.
# Run by motivnet-edge-firstboot.service (a oneshot). On failure the unit stays enabled, so the
# next boot tries again; the reason is in `journalctl -u motivnet-edge-firstboot`.
set -eu
DIR=${MOTIVNET_FIRSTBOOT_DIR:-/var/lib/motivnet-edge-firstboot}
UNIT=motivnet-edge-firstboot.service
UNIT_DIR=${MOTIVNET_UNIT_DIR:-/etc/systemd/system}

bundle=""
for f in "$DIR"/*.tar.gz; do [ -f "$f" ] && bundle=$f && break; done
[ -n "$bundle" ] || { echo "motivnet-edge firstboot: no bundle in $DIR" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$bundle" -C "$work"
for installer in "$work"/*/install.sh; do sh "$installer"; done
rm -f "$bundle"
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable "$UNIT"
else
    rm -f "$UNIT_DIR/multi-user.target.wants/$UNIT"
fi
echo "motivnet-edge firstboot: installed $(basename "$bundle"); $UNIT disabled"
