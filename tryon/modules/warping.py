"""Garment warping: ConvNet_TPS (thin-plate-spline geometric matching) and the refinement UNet.

Module and parameter names follow the published `warping_{dataset}.pth` ({"tps": ..., "refinement": ...}).
Both run in fp32 whatever the pipeline's dtype. Nothing here moves tensors between devices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FeatureExtractor(nn.Module):
    """`model`: Conv4x4/2 -> ReLU -> BN, then `num_layers` more of those (doubling channels), then two Conv3x3.

    B x in_channels x H x W  ->  B x (base * 2**num_layers) x H / 2**(num_layers+1) x W / 2**(num_layers+1).
    """

    def __init__(self, in_channels: int, base_channels: int = 64, num_layers: int = 3):
        super().__init__()
        widths = [base_channels * 2 ** i for i in range(num_layers + 1)]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 4, stride=2, padding=1), nn.ReLU(True),
                                   nn.BatchNorm2d(widths[0])]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU(True), nn.BatchNorm2d(c_out)]
        top = widths[-1]
        layers += [nn.Conv2d(top, top, 3, padding=1), nn.ReLU(True), nn.BatchNorm2d(top),
                   nn.Conv2d(top, top, 3, padding=1), nn.ReLU(True)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def l2_normalise_channels(features: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """B x C x H x W divided by its per-pixel channel norm (eps inside the square root, as trained)."""
    return features / torch.sqrt(features.pow(2).sum(dim=1, keepdim=True) + eps)


def correlate(cloth_features: torch.Tensor, person_features: torch.Tensor) -> torch.Tensor:
    """Dense correlation of two B x C x h x w maps  ->  B x (h*w) x h x w.

    Output channel `xa * h + ya` (column-major over the cloth map) at pixel (y, x) is the dot product of the cloth
    feature at (ya, xa) and the person feature at (y, x), the ordering the regressor was trained on.
    """
    b, _, h, w = cloth_features.shape
    products = torch.einsum("bcvu,bcyx->buvyx", cloth_features, person_features)
    return products.reshape(b, w * h, h, w)


class FeatureRegression(nn.Module):
    """`conv` (4 conv/BN/ReLU stages) -> flatten -> `linear` -> tanh: the 2 * grid_size**2 control-point coordinates."""

    def __init__(self, in_channels: int, in_size: tuple[int, int], out_dim: int, channels: int = 64):
        super().__init__()
        widths = [8 * channels, 4 * channels, 2 * channels, channels]
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 4, stride=2, padding=1), nn.BatchNorm2d(widths[0]), nn.ReLU(True),
            nn.Conv2d(widths[0], widths[1], 4, stride=2, padding=1), nn.BatchNorm2d(widths[1]), nn.ReLU(True),
            nn.Conv2d(widths[1], widths[2], 3, padding=1), nn.BatchNorm2d(widths[2]), nn.ReLU(True),
            nn.Conv2d(widths[2], widths[3], 3, padding=1), nn.BatchNorm2d(widths[3]), nn.ReLU(True),
        )
        h, w = (_after_stride2_conv(_after_stride2_conv(n)) for n in in_size)
        if h < 1 or w < 1:
            raise ValueError(f"a {in_size} correlation map is too small for the control-point regressor")
        self.linear = nn.Linear(channels * h * w, out_dim)

    def forward(self, correlation: torch.Tensor) -> torch.Tensor:
        """B x C x h x w  ->  B x out_dim in (-1, 1)."""
        return torch.tanh(self.linear(self.conv(correlation).flatten(1)))


def _after_stride2_conv(size: int) -> int:
    """Output length of Conv(kernel 4, stride 2, padding 1)."""
    return (size + 2 - 4) // 2 + 1


class ControlPointLocator(nn.Module):
    """`regression` -> grid_size**2 source control points (x, y); initialised to the identity warp."""

    def __init__(self, regression: FeatureRegression, target_points: torch.Tensor):
        super().__init__()
        self.regression = regression
        with torch.no_grad():
            self.regression.linear.weight.zero_()
            self.regression.linear.bias.copy_(torch.atanh(target_points.reshape(-1)))

    def forward(self, correlation: torch.Tensor) -> torch.Tensor:
        """B x C x h x w  ->  B x N x 2."""
        return self.regression(correlation).view(correlation.shape[0], -1, 2)


def _thin_plate_kernel(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r = 0.5 d log d with d = r^2, between P x 2 points and N x 2 centres -> P x N (0 at r = 0)."""
    squared = (points[:, None, :] - centres[None, :, :]).pow(2).sum(-1)
    kernel = 0.5 * squared * torch.log(squared)
    return torch.nan_to_num(kernel, nan=0.0)


class TPSGridGenerator(nn.Module):
    """Thin-plate-spline sampling grid from N source control points, for a height x width target.

    Buffers (stored in the checkpoint): `inverse_kernel` (N+3)^2, `padding_matrix` 3 x 2,
    `target_coordinate_repr` (height*width) x (N+3).
    """

    def __init__(self, height: int, width: int, target_points: torch.Tensor):
        super().__init__()
        self.height, self.width = height, width
        n = target_points.shape[0]
        ctrl = target_points.to("cpu", torch.float64)
        system = torch.zeros(n + 3, n + 3, dtype=torch.float64, device="cpu")
        system[:n, :n] = _thin_plate_kernel(ctrl, ctrl)
        system[:n, n] = 1
        system[n, :n] = 1
        system[:n, n + 1:] = ctrl
        system[n + 1:, :n] = ctrl.T
        # Built on the CPU even under a `torch.device("meta")` context: the buffers are small and a checkpoint
        # overwrites them anyway.
        grid = dict(dtype=torch.float64, device="cpu")
        ys, xs = torch.meshgrid(torch.arange(height, **grid), torch.arange(width, **grid), indexing="ij")
        target = torch.stack([xs.reshape(-1) * 2 / (width - 1) - 1, ys.reshape(-1) * 2 / (height - 1) - 1], dim=1)
        target_repr = torch.cat([_thin_plate_kernel(target, ctrl), torch.ones(height * width, 1, **grid),
                                 target], dim=1)
        self.register_buffer("inverse_kernel", torch.linalg.inv(system).float())
        self.register_buffer("padding_matrix", torch.zeros(3, 2, device="cpu"))
        self.register_buffer("target_coordinate_repr", target_repr.float())

    def forward(self, source_points: torch.Tensor) -> torch.Tensor:
        """B x N x 2 source control points (x, y)  ->  B x height x width x 2 grid for `F.grid_sample`."""
        b = source_points.shape[0]
        padded = torch.cat([source_points, self.padding_matrix.expand(b, 3, 2)], dim=1)
        coordinates = self.target_coordinate_repr @ (self.inverse_kernel @ padded)
        return coordinates.view(b, self.height, self.width, 2)


def control_point_grid(grid_size: int, span: float) -> torch.Tensor:
    """grid_size**2 x 2 points (x, y) on a regular grid over [-span, span]^2, x varying fastest."""
    values = torch.linspace(-span, span, grid_size, device="cpu")
    ys, xs = torch.meshgrid(values, values, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


class ConvNetTPS(nn.Module):
    """ConvNet_TPS: cloth and person features -> correlation -> control points -> TPS grid.

    extractionA reads the cloth (3 channels), extractionB the masked person + pose map (21 channels).
    """

    def __init__(self, height: int, width: int, person_channels: int = 21, extractor_channels: int = 64,
                 extractor_layers: int = 3, regression_channels: int = 64, grid_size: int = 5,
                 grid_span: float = 0.9):
        super().__init__()
        target_points = control_point_grid(grid_size, grid_span)
        self.extractionA = FeatureExtractor(3, extractor_channels, extractor_layers)
        self.extractionB = FeatureExtractor(person_channels, extractor_channels, extractor_layers)
        scale = 2 ** (extractor_layers + 1)
        feature_size = (height // scale, width // scale)
        regression = FeatureRegression(feature_size[0] * feature_size[1], feature_size, 2 * grid_size ** 2,
                                       regression_channels)
        self.loc_net = ControlPointLocator(regression, target_points)
        self.gridGen = TPSGridGenerator(height, width, target_points)

    def forward(self, cloth: torch.Tensor, person: torch.Tensor) -> torch.Tensor:
        """cloth: B x 3 x h x w in [-1, 1]; person: B x 21 x h x w  ->  grid B x h x w x 2 (x, y) in ~[-1, 1]."""
        cloth_features = l2_normalise_channels(self.extractionA(cloth))
        person_features = l2_normalise_channels(self.extractionB(person))
        return self.gridGen(self.loc_net(correlate(cloth_features, person_features)))


class DoubleConv(nn.Module):
    """`double_conv`: (Conv3x3 without bias -> BN -> ReLU) x 2."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None):
        super().__init__()
        mid = mid_channels or out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(True),
            nn.Conv2d(mid, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """`maxpool_conv`: MaxPool2d(2) -> DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Bilinear x2 upsample (align_corners=True), pad to the skip, concatenate [skip, up], DoubleConv (`conv`)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        dy, dx = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
        x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class OutConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class RefinementUNet(nn.Module):
    """UNetVanilla(24 -> 3, bilinear): keys inc, down1-4, up1-4, outc. B x 24 x H x W -> B x 3 x H x W (unclamped)."""

    def __init__(self, in_channels: int = 24, out_channels: int = 3, base_channels: int = 64):
        super().__init__()
        w = base_channels
        self.inc = DoubleConv(in_channels, w)
        self.down1 = Down(w, 2 * w)
        self.down2 = Down(2 * w, 4 * w)
        self.down3 = Down(4 * w, 8 * w)
        self.down4 = Down(8 * w, 8 * w)
        self.up1 = Up(16 * w, 4 * w)
        self.up2 = Up(8 * w, 2 * w)
        self.up3 = Up(4 * w, w)
        self.up4 = Up(2 * w, w)
        self.outc = OutConv(w, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


def warp_garment(tps: ConvNetTPS, refinement: RefinementUNet, garment: torch.Tensor, masked_person: torch.Tensor,
                 pose_map: torch.Tensor, tps_size: tuple[int, int]) -> torch.Tensor:
    """The try-on's warping stage, all fp32.

    garment, masked_person: B x 3 x H x W in [-1, 1]; pose_map: B x 18 x H x W in [0, 1].
    TPS predicts the grid at `tps_size`; the grid is upsampled to H x W, the full-resolution garment is sampled
    through it (border padding), and the refinement UNet cleans the result.
    Returns the warped garment, B x 3 x H x W clamped to [-1, 1].
    """
    garment, masked_person, pose_map = (t.float() for t in (garment, masked_person, pose_map))
    height, width = garment.shape[-2:]

    def low(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, size=tps_size, mode="bilinear", align_corners=False, antialias=True)

    grid = tps(low(garment), torch.cat([low(masked_person), low(pose_map)], dim=1))
    grid = F.interpolate(grid.permute(0, 3, 1, 2), size=(height, width), mode="bilinear", align_corners=False,
                         antialias=True).permute(0, 2, 3, 1)
    warped = F.grid_sample(garment, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return refinement(torch.cat([masked_person, pose_map, warped], dim=1)).clamp(-1, 1)
