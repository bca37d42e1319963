"""Registered model presets (JSON specs), shipped inside the package."""
