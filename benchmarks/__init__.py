"""``motivnet-edge bench``: every artifact against the full model and the teacher on the same
faces, per engine and target, side by side; the end-to-end daemon, device-side and emulated rows;
and the model card written from a compress run's figures."""
