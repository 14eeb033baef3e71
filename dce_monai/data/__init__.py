"""dce_monai.data."""
