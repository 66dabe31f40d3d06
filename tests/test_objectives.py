import math

import torch
import torch.nn.functional as F

from modalities import get_modality
from pipeline.models.loading import fresh_encoder
from pipeline.models.ntxent import NTXentLoss
from pipeline.models.methods import build_objective


def direct_ntxent(z1, z2, t):
    """The SimCLR paper's loss written out term by term."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n, b = len(z), len(z1)
    total = 0.0
    for i in range(n):
        j = (i + b) % n
        denom = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(n) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / t) / denom)
    return total / n


def test_ntxent_matches_direct_computation():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    for t in (0.1, 0.5):
        assert abs(NTXentLoss(t)(z1, z2).item() - direct_ntxent(z1, z2, t)) < 1e-4


def test_ntxent_is_low_for_matching_views():
    z = torch.randn(6, 8)
    assert NTXentLoss(0.1)(z, z + 0.01 * torch.randn(6, 8)) < NTXentLoss(0.1)(z, torch.randn(6, 8))


def test_mae_training_loss_only_on_masked_patches(tiny_params):
    image = get_modality("image", tiny_params)
    mae = build_objective("mae", fresh_encoder(image, tiny_params), image, tiny_params)
    x = torch.rand(3, 1, 28, 28)
    loss, pred, mask = mae.reconstruct(x, torch.Generator().manual_seed(0))
    # the training forward predicts only the hidden patches, and gives the same loss
    torch.testing.assert_close(mae(x, None, torch.Generator().manual_seed(0)), loss)
    target = image.mae_target(x, tiny_params.mae.norm_pix_loss)
    hidden = mask.bool()
    torch.testing.assert_close(loss, ((pred[hidden] - target[hidden]) ** 2).mean())


def test_mae_gradient_ignores_visible_predictions(tiny_params):
    image = get_modality("image", tiny_params)
    mae = build_objective("mae", fresh_encoder(image, tiny_params), image, tiny_params)
    x = torch.rand(3, 1, 28, 28)
    loss, pred, mask = mae.reconstruct(x, torch.Generator().manual_seed(0))
    grad, = torch.autograd.grad(loss, pred)
    visible = mask == 0
    assert torch.all(grad[visible] == 0)
    assert torch.any(grad[~visible] != 0)
    assert mae.encoder(x, ids_keep=torch.zeros(3, 4, dtype=torch.long)).shape == (3, 4, 32)  # only visible tokens


def test_simclr_forward_gives_finite_loss(tiny_params):
    image = get_modality("image", tiny_params)
    simclr = build_objective("simclr", fresh_encoder(image, tiny_params), image, tiny_params)
    loss = simclr(torch.rand(8, 1, 28, 28), None, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and loss.requires_grad
