"""dce_monai networks."""

from .nets import VGG3DCAM, Lockstep, ResNet34Transfer, load_torchvision_weights, normalize_cam

__all__ = ["VGG3DCAM", "Lockstep", "ResNet34Transfer", "load_torchvision_weights", "normalize_cam"]
