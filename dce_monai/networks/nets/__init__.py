"""Networks: ResNet34 transfer net (seed 1), 3D VGG with CAM head (seed 2)."""

from .resnet_transfer import ResNet34Transfer, load_torchvision_weights
from .vgg3d_cam import VGG3DCAM, normalize_cam

__all__ = ["VGG3DCAM", "ResNet34Transfer", "load_torchvision_weights", "normalize_cam"]
