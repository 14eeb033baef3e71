"""dce_monai.handlers."""
