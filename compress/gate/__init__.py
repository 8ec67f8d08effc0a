"""The gate: every artifact run in its own engine against its float source, the teacher and
the labels (gate), accuracy on labelled real photos (evaluate), the validate stage that writes
report.json and manifest.json (stage), and the printed table (report)."""
