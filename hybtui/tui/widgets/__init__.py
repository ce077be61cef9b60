"""Domain widgets the screens compose: the run table, the loss plot, the language table."""
