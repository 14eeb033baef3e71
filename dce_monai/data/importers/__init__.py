"""dce_monai.data.importers."""
