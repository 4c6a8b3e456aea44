"""RCGS against its paper: the classifier on the group vector (eq. 7), the vector itself broadcast,
bilinear-initialised deconvolutions, and a co-category branch that learns separable categories."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.nn import functional as F  # noqa: E402

from reference_models import rcgs  # noqa: E402

CATEGORIES = ["a", "b", "c", "d"]
STEPS = 60
TINY = {
    "categories": CATEGORIES,
    "pretrained": False,
    "reduce_channels": 16,
    "embed_dim": 16,
    "group_dim": 16,
    "lrbp_rank": 4,
    "fusion_channels": 8,
}


def tiny_model(**overrides: object) -> rcgs.RCGS:
    torch.manual_seed(0)
    return rcgs.build_model({**TINY, **overrides})


@pytest.mark.parametrize("fusion", ["multi", "single-g5"])
def test_every_deconvolution_starts_as_bilinear_interpolation(fusion: str) -> None:
    deconvolutions = [
        m for m in tiny_model(fusion=fusion).modules() if isinstance(m, torch.nn.ConvTranspose2d)
    ]
    assert len(deconvolutions) == (3 if fusion == "multi" else 1)
    for layer in deconvolutions:
        factor = layer.stride[0]
        x = torch.randn(2, layer.in_channels, 5, 6, generator=torch.Generator().manual_seed(factor))
        expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        inner = (..., slice(factor, -factor), slice(factor, -factor))  # away from the zero-padded border
        with torch.no_grad():
            torch.testing.assert_close(layer(x)[inner], expected[inner], rtol=0, atol=1e-5)


def test_the_decoder_receives_the_group_vector_itself() -> None:
    model = tiny_model().eval()
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        output = model(images, group_size=2)
        features = model.encode(images)
        by_hand = model.decoder(features, output.vectors.repeat_interleave(2, dim=0))
        swapped = model.decoder(features, output.vectors.flip(0).repeat_interleave(2, dim=0))
    torch.testing.assert_close(output.saliency, by_hand)
    assert (swapped - output.saliency).abs().max() > 1e-4  # another group's vector gives other maps


def separable_pool5(category: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """ReLU-like pool5 maps ``[N, 512, 2, 2]`` of images showing ``category``: a category prototype at a
    random strength at every location, plus noise (prototypes fixed by seed 0)."""
    prototypes = torch.rand(len(CATEGORIES), 512, generator=torch.Generator().manual_seed(0))
    strength = 0.5 + torch.rand(category.shape[0], 1, 2, 2, generator=generator)
    noise = 0.3 * torch.randn(category.shape[0], 512, 2, 2, generator=generator)
    return F.relu(prototypes[category][:, :, None, None] * strength + noise)


@pytest.mark.parametrize("pooling", ["hlrbp", "ap"])
def test_co_category_branch_learns_group_vectors_that_predict_the_co_category(pooling: str) -> None:
    model = tiny_model(group_pooling=pooling)
    parameters = list(model.pooling.parameters()) + list(model.classifier.parameters())
    optimizer = torch.optim.Adam(parameters, lr=1e-2)
    generator = torch.Generator().manual_seed(1)
    subgroups, size = 8, 3

    def vectors_and_logits(category: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pool5 = separable_pool5(category.repeat_interleave(size), generator)
        embeddings = model.pooling.embed(pool5).view(category.shape[0], size, -1)
        vectors = model.pooling.group_vector(embeddings)
        return vectors, model.classifier(vectors)

    for _ in range(STEPS):
        category = torch.randint(len(CATEGORIES), (subgroups,), generator=generator)
        _, logits = vectors_and_logits(category)
        loss = F.binary_cross_entropy_with_logits(logits, F.one_hot(category, len(CATEGORIES)).float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    with torch.no_grad():
        category = torch.arange(len(CATEGORIES)).repeat(5)  # 5 new sub-groups of each category
        vectors, logits = vectors_and_logits(category)
    assert torch.equal(logits.argmax(1), category)  # the vector predicts the co-category
    assert ((torch.sigmoid(logits) > 0.5) == F.one_hot(category, len(CATEGORIES)).bool()).all()
    means = torch.stack([vectors[category == c].mean(0) for c in range(len(CATEGORIES))])
    spread = max(float((vectors[category == c] - means[c]).norm(dim=1).max()) for c in range(len(CATEGORIES)))
    between = torch.cdist(means, means) + torch.eye(len(CATEGORIES)) * 1e9
    assert float(between.min()) > 2 * spread  # groups of different categories get different vectors
