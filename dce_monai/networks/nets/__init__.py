"""dce_monai.networks.nets."""
