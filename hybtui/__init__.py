"""hybtui: a terminal experiment manager for multilingual dense retrievers trained
with hybrid batch sampling (see DESIGN.md for the science and the layout)."""

__version__ = "0.1.0"
