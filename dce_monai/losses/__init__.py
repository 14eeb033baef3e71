"""dce_monai.losses."""
