"""Checks on the model's answers against the scene: rule QC and the count claims it reads from text."""
