"""LaDI-VTON's trained modules, with parameter names exactly as in the published checkpoints."""

from tryon.modules.emasc import EMASC
from tryon.modules.inversion_adapter import InversionAdapter
from tryon.modules.warping import ConvNetTPS, RefinementUNet

__all__ = ["EMASC", "ConvNetTPS", "InversionAdapter", "RefinementUNet"]
