"""The artifact contract every other layer builds on: errors, labels, the crop spec and the one
crop-and-preprocess function, the format table and each format's metadata codec, the metadata
and manifest readers, classifier specs, files and caches, the engines (one module each, behind
one narrow interface) and the hardware target profiles. Imports no torch."""
