"""The hierarchical prompter: local object notes, then a global scene description, then a dialogue."""
