"""The compress chain, grouped by stage: ``models/`` (MotivNet, checkpoints, teachers,
students), ``distil/`` (faces, augmentation, the teacher cache, training), ``int8/`` (FP32
export, the per-format INT8 operations, recipes, QAT and its graph edits) and ``gate/``
(validation against the float source, labelled evaluation, the report). The command line
(``commands``, ``checks``, ``registry``) and the run folder (``runfolder``) import no torch, so
``--help`` and ``bench`` work on a device install; the stages need torch."""
