"""NVIDIA's VGG16 (`vgg16.pt`, TorchScript): features for precision/recall, LPIPS distances for path length.

Contract of the file (NVIDIA's `forward(img, return_features=False, return_lpips=False, resize_images=True)`):
float or uint8 images [N, 3, H, W] in [0, 255]; it resizes to 224x224 itself unless resize_images=False.
Where the file is looked for and how it is checked: metrics/weights.py.
"""
import torch

from .features import FeatureExtractor
from .weights import load_torchscript, verify

VGG16_NAME = 'vgg16-nvidia'

#----------------------------------------------------------------------------

class VGG16Features(FeatureExtractor):
    """4096-d VGG16 features of uint8 images at their own resolution (the file resizes), as NVIDIA's pr50k3 uses."""

    def __init__(self, spec, device='cpu', path: str = None):
        self.path = verify(spec, spec.path(path))
        self.name, self.resize_mode, self.feature_dim = VGG16_NAME, None, 4096
        self.device = torch.device(device)
        self.model = load_torchscript(spec, self.path, self.device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.round().clamp(0, 255).to(self.device, torch.uint8), return_features=True)

    @torch.no_grad()
    def lpips(self, images: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS embeddings of float images in [0, 255], not resized (path length compares pairs of them)."""
        return self.model(images.to(self.device, torch.float32), resize_images=False, return_lpips=True)

#----------------------------------------------------------------------------
