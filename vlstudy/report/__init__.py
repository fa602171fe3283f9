"""The report layer: paper numbers, findings, result tables and figures, the offline index page and its fonts."""
