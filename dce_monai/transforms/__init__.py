"""dce_monai.transforms."""
