"""dce_monai.networks.blocks."""
