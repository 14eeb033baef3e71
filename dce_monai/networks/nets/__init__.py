"""Networks: ResNet34 transfer net (seed 1), 3D VGG with CAM head (seed 2)."""

from .lockstep import Lockstep
from .resnet_transfer import ResNet34Transfer, load_torchvision_weights, triplet_group
from .vgg3d_cam import VGG3DCAM, normalize_cam

__all__ = ["VGG3DCAM", "Lockstep", "ResNet34Transfer", "load_torchvision_weights", "normalize_cam", "triplet_group"]
