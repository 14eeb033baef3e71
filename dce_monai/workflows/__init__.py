"""dce_monai.workflows."""
