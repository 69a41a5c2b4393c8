"""Post-build tools: they read what a build wrote (export, merge, preview, validate, stats) and know
nothing of how it was made."""
