"""Experiments that chose the project's defaults, kept runnable so the choice can be measured
again (the default student: :mod:`motivnet_edge.experiments.choose_student`)."""
