"""dce_monai.networks."""
