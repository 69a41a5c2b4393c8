"""Words: how categories are named per source, plurals, numbers read from text, positions in words."""
