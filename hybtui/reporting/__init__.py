"""Stored runs made readable: one run's tables (tables), runs side by side (compare),
exports to files (export) and a grid's report (grid_report).

Reporting only reads the store and result rows (runs/, results.py), never trains, so
the CLI's reading commands and the app share it without loading torch."""
