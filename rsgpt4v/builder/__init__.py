"""The build: the per-source pipeline loop, recipes and their mix, the planning index and the leakage
fingerprints."""
