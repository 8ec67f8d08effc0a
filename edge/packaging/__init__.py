"""Putting the runtime onto devices: offline bundles (``bundle``), their check (``verify``), the
systemd unit (``service``) and the install, first-boot and image-staging scripts (``device/``)."""
