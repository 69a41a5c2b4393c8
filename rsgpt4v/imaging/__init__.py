"""The image side: opening images within limits, bit-depth stretch, geometry, cutting windows (the one
"inside a window" rule), the pixel budget and encoding."""
