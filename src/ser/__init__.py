"""ser: speech emotion recognition (RAVDESS + TESS) as a reproducible DVC pipeline."""
