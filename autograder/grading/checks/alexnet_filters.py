"""Checks of the AlexNet first-layer visualization assignment.

The evaluator builds the same AlexNet as the notebook (ImageNet weights on `full`, the public
seeded init on `tiny`, see `autograder.datasets.pretrained`) and compares:
  alexnet_filters       the exported `filters` tensor with the first convolution's weights;
  alexnet_feature_maps  the exported `feature_maps` program, run on hidden images the notebook
                        never saw, with ReLU(conv1(image)) computed here;
  alexnet_grids         the exported figures, by content: an 8 x 8 grid of tiles is located in
                        each PNG and every tile is correlated with the evaluator's own rendering
                        of that filter / feature map (of the example image). File names do not
                        matter.
Wrong answers get a diagnosis where one is common (axes permuted, maps transposed, no ReLU).
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

from ...export_names import TENSORS_FILE
from . import CheckResult, register
from .context import EvalContext

PROGRAM_FILE = "feature_maps.pt2"
GRID = 8
FILTER_SHAPE, MAPS_SHAPE = (64, 3, 11, 11), (64, 55, 55)
MAX_FIGURE_PIXELS = 25_000_000


def first_conv(ctx: EvalContext):
    """AlexNet's first convolution as the notebook had it (built once per evaluator process)."""
    return _first_conv(ctx.profile, ctx.data_root)


@functools.lru_cache(maxsize=2)
def _first_conv(profile: str, data_root: Path | None):
    from ...datasets.pretrained import pretrained_model

    conv = pretrained_model("alexnet", profile, data_root).features[0]
    conv.requires_grad_(False)
    return conv


def reference_maps(conv, images):
    """ReLU(conv1(images)): N x 64 x 55 x 55."""
    import torch

    with torch.no_grad():
        return torch.relu(conv(images))


def _close(got, want, rtol: float = 1e-4) -> bool:
    import torch

    return got.shape == want.shape and bool(torch.allclose(got.float(), want.float(), rtol=rtol,
                                                           atol=rtol * float(want.abs().max()) + 1e-6))


def _corr(a, b) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denominator = float(a.norm() * b.norm())
    return float(a @ b) / denominator if denominator > 0 else 0.0


# ---- filters ---------------------------------------------------------------------------------

@register("alexnet_filters")
def filters_check(ctx: EvalContext, options: dict) -> CheckResult:
    try:
        got = ctx.tensors(TENSORS_FILE).get("filters")
    except FileNotFoundError as exc:
        return CheckResult(0.0, f"0 points: {exc}: the export cell did not run")
    if got is None:
        return CheckResult(0.0, "0 points: the export has no 'filters' tensor")
    want = first_conv(ctx).weight.detach()
    details = {"shape": list(got.shape)}
    if _close(got, want):
        return CheckResult(1.0, "the 64 x 3 x 11 x 11 filters are exactly the first convolution's weights", details=details)
    if tuple(got.shape) != FILTER_SHAPE:
        for perm in itertools.permutations(range(4)):
            if _close(got, want.permute(perm)):
                return CheckResult(0.0, f"0 points: the filters have the right values but their axes are permuted "
                                        f"(shape {tuple(got.shape)}; expected 64 x 3 x 11 x 11: filter, colour, row, "
                                        "column). Permute only a copy for plotting.", details=details)
        return CheckResult(0.0, f"0 points: the filters have shape {tuple(got.shape)}, expected 64 x 3 x 11 x 11",
                           details=details)
    flat = want.flatten(1)
    low, high = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
    if _close(got, (want - low) / (high - low), rtol=1e-3):
        return CheckResult(0.5, "half the points: these are the filters rescaled to [0, 1] for display; return the "
                                "weights unchanged and rescale only for plotting", details=details)
    details["correlation"] = _corr(got, want)
    return CheckResult(0.0, f"0 points: the filters differ from the first convolution's weights (correlation "
                            f"{details['correlation']:.2f}); return model.features[0].weight", details=details)


# ---- feature maps on hidden images -----------------------------------------------------------

def _diagnose(got, want) -> tuple[float, str]:
    import torch

    if got.dim() == 4 and got.shape[0] == 1:
        got = got[0]
    if _close(got, want, rtol=1e-3):
        return 1.0, "match"
    if tuple(got.shape) == (55, 55, 64) and _close(got.permute(2, 0, 1), want, rtol=1e-3):
        return 0.0, "channels last (55 x 55 x 64); expected 64 x 55 x 55"
    if tuple(got.shape) == MAPS_SHAPE:
        if _close(got.transpose(1, 2), want, rtol=1e-3):
            return 0.0, "transposed: rows and columns are swapped"
        pre_relu = torch.relu(got) if got.min() < 0 else None
        if pre_relu is not None and _close(pre_relu, want, rtol=1e-3):
            return 0.5, "the maps are taken before the ReLU"
        return 0.0, f"values differ from ReLU(conv1(image)) (correlation {_corr(got, want):.2f})"
    return 0.0, f"shape {tuple(got.shape)}, expected 64 x 55 x 55"


@register("alexnet_feature_maps")
def feature_maps_check(ctx: EvalContext, options: dict) -> CheckResult:
    import torch

    try:
        program = ctx.program(PROGRAM_FILE).module()
    except FileNotFoundError as exc:
        return CheckResult(0.0, f"0 points: {exc}: the export cell did not run")
    images = ctx.test_split.images
    wanted = reference_maps(first_conv(ctx), images)
    scores, notes = [], []
    for image, want in zip(images, wanted):
        try:
            with torch.no_grad():
                got = program(image[None])
            score, note = _diagnose(got.detach().float(), want)
        except Exception as exc:   # the student's traced function failed on this image
            score, note = 0.0, f"failed: {type(exc).__name__}: {str(exc)[:120]}"
        scores.append(score)
        notes.append(note)
    score = sum(scores) / len(scores)
    details = {"images": len(scores), "per_image": notes}
    if score == 1.0:
        return CheckResult(1.0, f"your feature_maps matches ReLU(conv1(image)) on all {len(scores)} hidden images",
                           details=details)
    common = max(set(notes), key=notes.count)
    return CheckResult(score, f"your feature_maps matches on {scores.count(1.0)} of {len(scores)} hidden images; "
                              f"{common}", details=details)


# ---- figures, by content ---------------------------------------------------------------------

def _read_png(path: Path):
    """H x W x 3 float in [0, 1], transparency composited over white."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        if image.width * image.height > MAX_FIGURE_PIXELS:
            raise ValueError(f"{path.name}: {image.width} x {image.height} pixels is too large for a figure")
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0
    return rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])


def _runs(mask) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, on in enumerate(list(mask) + [False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _bands(profile, n: int) -> list[tuple[int, int]] | None:
    """n bands of tiles along one axis: runs of mostly-content lines; touching tiles (one long
    run) or a stray run are handled by splitting the span of the long runs evenly."""
    import numpy as np

    if profile.max() <= 0:
        return None
    runs = _runs(profile > 0.5 * profile.max())
    longest = max(b - a for a, b in runs)
    runs = [(a, b) for a, b in runs if b - a >= 0.3 * longest]   # drop titles, labels, lines
    if len(runs) > n:   # e.g. a colour bar beside the grid: keep the n most regular neighbours
        def irregularity(window):
            sizes = np.array([b - a for a, b in window], dtype=float)
            gaps = np.array([window[i + 1][0] - window[i][1] for i in range(n - 1)], dtype=float)
            return (sizes.std() + gaps.std()) / sizes.mean()
        runs = min((runs[i:i + n] for i in range(len(runs) - n + 1)), key=irregularity)
    if len(runs) == n:
        return runs
    edges = np.linspace(runs[0][0], runs[-1][1], n + 1).round().astype(int)
    return list(zip(edges[:-1], edges[1:]))


def grid_tiles(path: Path, n: int = GRID):
    """The n x n tiles of a grid figure, row by row, as grey-level arrays, or None."""
    import numpy as np

    rgb = _read_png(path)
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    background = np.median(border, axis=0)
    content = np.abs(rgb - background).max(-1) > 0.04
    rows = _bands(content.mean(1), n)
    if rows is None:
        return None
    inside = np.concatenate([np.arange(a, b) for a, b in rows])
    cols = _bands(content[inside].mean(0), n)
    if cols is None:
        return None
    grey = rgb @ np.array([0.299, 0.587, 0.114])
    return [grey[r0:r1, c0:c1] for r0, r1 in rows for c0, c1 in cols]


def _resize(array, size):
    """Area-average resampling (nearest-like when enlarging) of a 2-D array to `size` (a tensor)."""
    import torch
    import torch.nn.functional as F

    return F.adaptive_avg_pool2d(torch.as_tensor(array, dtype=torch.float64)[None, None], size)[0, 0]


def tile_correlation(tiles, expected, inset: float = 0.08, size: int = 24) -> float:
    """Median over tiles of the correlation between a drawn tile and the expected image, both
    drawn at the tile's size, trimmed by `inset` at each side (frames and gaps do not count),
    and compared at size x size."""
    import statistics

    values = []
    for tile, want in zip(tiles, expected):
        h, w = tile.shape
        if min(h, w) < 4:
            return 0.0
        dy, dx = int(h * inset), int(w * inset)
        a = _resize(tile[dy:h - dy, dx:w - dx], size)
        b = _resize(_resize(want, (h, w))[dy:h - dy, dx:w - dx], size)
        if a.std() > 1e-6 and b.std() > 1e-6:
            values.append(_corr(a, b))
    return statistics.median(values) if len(values) >= len(expected) // 2 else 0.0


def expected_filter_tiles(weight):
    """Each filter rescaled to [0, 1] as its own RGB image, as grey levels (11 x 11)."""
    import torch

    flat = weight.flatten(1)
    low, high = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
    rgb = (weight - low) / (high - low + 1e-12)
    return list(torch.einsum("nchw,c->nhw", rgb, torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype)))


def _best_match(tiles, expected) -> float:
    """Correlation for row-major and column-major tile order; the better one."""
    n = GRID
    column_major = [expected[c * n + r] for r in range(n) for c in range(n)]
    return max(tile_correlation(tiles, expected), tile_correlation(tiles, column_major))


def _render(tiles, path: Path, scale: int, gap: int = 4) -> str:
    """An 8 x 8 mosaic of tiles (H x W x 3 or H x W, each rescaled to [0, 1]) as a PNG, for the feedback."""
    import numpy as np
    from PIL import Image

    tiles = [np.asarray(t, dtype=np.float64) for t in tiles]
    tiles = [np.repeat(t[..., None], 3, -1) if t.ndim == 2 else t for t in tiles]
    tiles = [(t - t.min()) / (t.max() - t.min() + 1e-12) for t in tiles]
    h, w = tiles[0].shape[0] * scale, tiles[0].shape[1] * scale
    mosaic = np.ones((GRID * (h + gap) + gap, GRID * (w + gap) + gap, 3))
    for i, t in enumerate(tiles[:GRID * GRID]):
        r, c = divmod(i, GRID)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        mosaic[y:y + h, x:x + w] = t.repeat(scale, 0).repeat(scale, 1)
    Image.fromarray((mosaic * 255).round().astype(np.uint8)).save(path)
    return str(path)


@register("alexnet_grids")
def grids_check(ctx: EvalContext, options: dict) -> CheckResult:
    """Half the points for a figure showing the 64 filters as an 8 x 8 grid, half for one showing
    the 64 feature maps of the example image; found by content among all exported figures."""
    from ...datasets import load_split

    threshold = float(options.get("threshold", 0.6))
    review = float(options.get("review_below", 0.35))
    conv = first_conv(ctx)
    image = load_split(ctx.dataset, "train", ctx.profile, ctx.data_root).images[:1]
    weight = conv.weight.detach().double()
    maps = reference_maps(conv, image)[0].double()
    expected = {"filters": expected_filter_tiles(weight), "feature maps": list(maps)}

    folder = ctx.artifacts / "figures"
    names = sorted(p.stem for p in folder.glob("*.png")) if folder.is_dir() and not folder.is_symlink() else []
    figures = [path for path in map(ctx.figure, names) if path is not None]   # regular files only
    best = {kind: (0.0, None) for kind in expected}
    for path in figures:
        try:
            tiles = grid_tiles(path)
        except Exception:   # an unreadable or odd image is simply not a grid
            tiles = None
        if not tiles:
            continue
        for kind, want in expected.items():
            value = _best_match(tiles, want)
            if value > best[kind][0]:
                best[kind] = (value, path.name)

    ctx.out.mkdir(parents=True, exist_ok=True)
    shown = {"expected_filter_grid": _render(list(weight.permute(0, 2, 3, 1).numpy()),
                                             ctx.out / "expected_filter_grid.png", scale=4),
             "expected_feature_map_grid": _render([m.numpy() for m in maps],
                                                  ctx.out / "expected_feature_map_grid.png", scale=1)}
    score, lines, unsure = 0.0, [], False
    for kind, (value, name) in best.items():
        if value >= threshold:
            score += 0.5
            lines.append(f"{kind}: {name} shows them (tile correlation {value:.2f})")
        elif value >= review:
            unsure = True
            lines.append(f"{kind}: {name} resembles them only partly (tile correlation {value:.2f}); a grader will look")
        else:
            lines.append(f"{kind}: no exported figure shows them as an 8 x 8 grid" +
                         (f" (best: {name}, correlation {value:.2f})" if name else ""))
    details = {kind: {"correlation": value, "figure": name} for kind, (value, name) in best.items()}
    details["figures"] = [p.name for p in figures]
    return CheckResult(score, "; ".join(lines), needs_review=unsure, figures=shown, details=details)
