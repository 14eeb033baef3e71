"""dce_monai.metrics."""
