# %% [markdown]
# # What AlexNet's first layer sees: filters and feature maps
#
# The first convolution of AlexNet (Krizhevsky et al., 2012) applies 64 filters of size
# 3 x 11 x 11 with stride 4 to a 224 x 224 RGB image. Its filters live in pixel space, so they
# can be drawn as small colour images, and each filter's response to an image (its feature map,
# 55 x 55) shows where in the image that filter's pattern occurs.
#
# Write two functions, one returning the filters and one computing the feature maps of an
# image, and draw both as 8 x 8 grids. The grader compares your filters with the network's, runs
# your feature-map function on an image this notebook never sees and compares the result with
# its own computation, and looks at your two figures. On the `tiny` profile AlexNet has random
# weights (drawn with a fixed seed): its filters look like noise, but everything you write works
# unchanged on `full`, where the weights are ImageNet's and the filters show edges and colours.
#
# Fill in every cell marked `YOUR CODE HERE` or `YOUR ANSWER HERE`; leave the other cells as
# they are (they are restored before grading).

# %% locked id=imports
import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

from autograder.datasets import load_split
from autograder.datasets.pretrained import pretrained_model
from autograder.student import export_for_grading

if __name__ == "__main__":
    # %% parameters
    # Grading parameters: the grader injects its own values after this cell.
    profile = "tiny"          # "tiny": random-weight AlexNet; "full": ImageNet AlexNet (weights under data_root)
    device = "auto"           # unused: everything here runs on the CPU in a second
    data_root = None          # folder holding torch/hub/checkpoints/alexnet-owt-7be5be79.pth for the full profile
    artifact_dir = "artifacts"
    seed = 0

    # %% locked id=setup
    photos = load_split("sample_photos", "train", profile, data_root)
    image = photos.images[0]       # 3 x 224 x 224, normalized with the ImageNet statistics
    model = pretrained_model("alexnet", profile, data_root).eval()
    print(f"{profile} profile: AlexNet's first layer is {model.features[0]}; image {tuple(image.shape)}")

    # %% locked id=show_image
    # The example image (undoing the normalization for display).
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    plt.figure(figsize=(3, 3))
    plt.imshow((image * std + mean).clamp(0, 1).permute(1, 2, 0))
    plt.axis("off")
    plt.show()

# %% [markdown]
# ## 1. The filters
#
# * `first_layer_filters(model)`: the weights of AlexNet's first convolution (`model.features[0]`)
#   as a `64 x 3 x 11 x 11` tensor, detached from the graph, unchanged (no rescaling).
# * `plot_filter_grid(filters)`: a matplotlib figure with the 64 filters in an 8 x 8 grid, filter
#   `i` at row `i // 8`, column `i % 8`, each drawn as an 11 x 11 RGB image after rescaling that
#   filter to [0, 1] (its minimum to 0, its maximum to 1). No axes; return the figure.

# %% solution id=filters
def first_layer_filters(model: nn.Module) -> torch.Tensor:
    ### BEGIN SOLUTION
    return model.features[0].weight.detach().clone()
    ### END SOLUTION


def plot_filter_grid(filters: torch.Tensor):
    ### BEGIN SOLUTION
    fig, axes = plt.subplots(8, 8, figsize=(8, 8))
    for f, ax in zip(filters, axes.flat):
        f = (f - f.min()) / (f.max() - f.min() + 1e-12)
        ax.imshow(f.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.axis("off")
    fig.suptitle("AlexNet conv1: 64 filters (3 x 11 x 11)")
    return fig
    ### END SOLUTION

if __name__ == "__main__":
    # %% test id=test_filters
    filters = first_layer_filters(model)
    assert filters.shape == (64, 3, 11, 11), "64 filters of 3 x 11 x 11"
    assert not filters.requires_grad, "detach the filters from the graph"
    print("filters OK")
    ### BEGIN HIDDEN TESTS
    assert torch.equal(filters, model.features[0].weight.detach()), "the filters must be the first convolution's weights, unchanged"
    ### END HIDDEN TESTS

    # %% locked id=show_filters
    filter_figure = plot_filter_grid(filters)
    plt.show()

# %% [markdown]
# ## 2. The feature maps
#
# * `feature_maps(model, image)`: for one normalized `3 x 224 x 224` image, the output of AlexNet's
#   first convolution followed by its ReLU: a `64 x 55 x 55` tensor, map `k` being filter `k`'s
#   response. Compute it without a graph.
# * `plot_map_grid(maps)`: the 64 maps in an 8 x 8 grid (map `k` at row `k // 8`, column `k % 8`),
#   each in grey levels with its own colour scale (`imshow`'s default), no axes; return the figure.
#
# The grader runs your `feature_maps` on images you have not seen.

# %% solution id=feature_maps
def feature_maps(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    with torch.no_grad():
        return F.relu(model.features[0](image))
    ### END SOLUTION


def plot_map_grid(maps: torch.Tensor):
    ### BEGIN SOLUTION
    fig, axes = plt.subplots(8, 8, figsize=(8, 8))
    for m, ax in zip(maps, axes.flat):
        ax.imshow(m.numpy(), cmap="gray")
        ax.axis("off")
    fig.suptitle("AlexNet conv1 + ReLU: 64 feature maps (55 x 55)")
    return fig
    ### END SOLUTION

if __name__ == "__main__":
    # %% test id=test_feature_maps
    maps = feature_maps(model, image)
    assert maps.shape == (64, 55, 55), "64 maps of 55 x 55 for one 3 x 224 x 224 image"
    assert maps.min() >= 0, "the maps are taken after the ReLU"
    print("feature maps OK")
    ### BEGIN HIDDEN TESTS
    conv = model.features[0]
    other = photos.images[1]
    for x in (image, other):
        expected = torch.relu(F.conv2d(x[None], conv.weight, conv.bias, stride=4, padding=2))[0]
        assert torch.allclose(feature_maps(model, x), expected, rtol=1e-4, atol=1e-5), \
            "the maps must be ReLU(conv1(image)), channels first, rows then columns"
    ### END HIDDEN TESTS

    # %% locked id=show_maps
    map_figure = plot_map_grid(maps)
    plt.show()

# %% [markdown]
# ## 3. Reflection
#
# Pick two filters from your grid and describe what pattern each one responds to, and where in
# the photo its feature map is bright. Why can the first layer's filters be understood by
# looking at them, while the filters of deeper layers cannot, and how would you find out what a
# deeper layer responds to? (On `tiny` the weights are random: say what you see and what you
# would expect from ImageNet weights.)

# %% answer id=reflection
# With random weights (tiny) the filters are noise and every map is a blurred, noisy copy of the
# photo: a random filter mixes colours and averages pixels, so it responds to brightness and
# colour rather than to a pattern. With ImageNet weights the filters are oriented edge and
# line detectors at various angles and frequencies, plus colour blobs and colour-opponent
# filters (e.g. green against magenta). A filter with a dark-light vertical edge gives a map that
# is bright along the vertical edges of the pagoda's pillars; a colour-blob filter lights up
# where the photo has that colour, such as the blue sky. The first layer can be read by eye
# because its weights multiply RGB pixels directly: a filter is itself a small image patch, the
# pattern it matches best. A deeper filter weights the 64 or more channels of the previous layer,
# not pixels, so drawing it shows nothing meaningful; to see what a deeper unit responds to, I
# would find the image patches that activate it most, optimize an input image to maximize its
# activation, or use gradient-based maps such as Grad-CAM.

if __name__ == "__main__":
    # %% export
    # Exports the filters, the feature maps, both figures, and `feature_maps` as a program that the
    # grader runs on images of its own. Do not edit.
    class FeatureMapProgram(nn.Module):
        """Your `feature_maps` on the first image of a batch. The model is a plain attribute, not a
        submodule, so the program keeps only the tensors your function uses."""

        def __init__(self, model):
            super().__init__()
            object.__setattr__(self, "model", model)

        def forward(self, images):
            return feature_maps(self.model, images[0]).unsqueeze(0)

    artifacts = export_for_grading(model.features[:2], photos.images, artifact_dir,
                                   tensors={"filters": first_layer_filters(model), "feature_maps": maps},
                                   figures={"filter_grid": filter_figure, "feature_map_grid": map_figure},
                                   programs={"feature_maps": (FeatureMapProgram(model), photos.images)})
    print(f"exported to {artifacts}")
