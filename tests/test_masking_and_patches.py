import torch

from modalities import get_modality
from modalities.masking import gather_tokens, random_mask


def test_mask_ratio_and_per_sample_difference():
    g = torch.Generator().manual_seed(0)
    m = random_mask(8, 49, 0.75, g, "cpu")
    assert m.ids_keep.shape == (8, 12)  # round(49 * 0.25)
    assert torch.all(m.mask.sum(1) == 49 - 12)
    assert len({tuple(row.tolist()) for row in m.mask}) == 8  # every sample hides a different subset


def test_visible_tokens_are_the_unmasked_ones_and_restore_order():
    g = torch.Generator().manual_seed(1)
    m = random_mask(4, 16, 0.5, g, "cpu")
    tokens = torch.arange(16).float().view(1, 16, 1).expand(4, 16, 3)
    visible = gather_tokens(tokens, m.ids_keep)[..., 0].long()
    for b in range(4):
        assert set(visible[b].tolist()) == set(torch.nonzero(m.mask[b] == 0).flatten().tolist())
    # visible + placeholders for the hidden, unshuffled with ids_restore, gives back the original order
    hidden = torch.full((4, 16 - m.ids_keep.shape[1], 3), -1.0)
    shuffled = torch.cat([gather_tokens(tokens, m.ids_keep), hidden], dim=1)
    restored = gather_tokens(shuffled, m.ids_restore)[..., 0]
    expected = torch.where(m.mask.bool(), torch.tensor(-1.0), torch.arange(16).float())
    assert torch.equal(restored, expected)


def test_patchify_unpatchify_round_trip(tiny_params):
    image = get_modality("image", tiny_params)
    x = torch.rand(3, 1, 28, 28)
    patches = image.patchify(x)
    assert patches.shape == (3, 16, 49)
    assert torch.equal(image.unpatchify(patches), x)
    # patch 0 is the top-left 7x7 block, patch 1 the block to its right
    assert torch.equal(patches[0, 0], x[0, 0, :7, :7].flatten())
    assert torch.equal(patches[0, 1], x[0, 0, :7, 7:14].flatten())


def test_normalised_target_has_zero_mean_unit_var(tiny_params):
    image = get_modality("image", tiny_params)
    target = image.mae_target(torch.rand(2, 1, 28, 28), normalize=True)
    assert torch.allclose(target.mean(-1), torch.zeros(2, 16), atol=1e-5)
    assert torch.allclose(target.var(-1), torch.ones(2, 16), atol=1e-3)


def test_simclr_views_differ_and_keep_shape(tiny_params):
    image = get_modality("image", tiny_params)
    x = torch.rand(4, 1, 28, 28)
    v1, v2 = image.simclr_views(x, torch.Generator().manual_seed(0))
    assert v1.shape == v2.shape == x.shape
    assert not torch.allclose(v1, v2)
    assert v1.min() >= 0 and v1.max() <= 1
    w1, _ = image.simclr_views(x, torch.Generator().manual_seed(0))
    assert torch.equal(v1, w1)  # reproducible from the generator
