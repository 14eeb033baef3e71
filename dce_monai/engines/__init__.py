"""dce_monai.engines."""
