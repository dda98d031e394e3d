"""Drawing synthetic lesions: a dermoscopic close-up showing the seven-point criteria, and a clinical
photograph of the same lesion from further away that carries evidence the close-up lacks (a diagnosis
cue, the surrounding skin, elevation, body site).

All drawing is vectorised numpy on float32 RGB in [0, 1]; every random choice comes from the
``numpy.random.Generator`` passed in, so a case's images depend only on its seed. Both generators
save what is drawn with :func:`save_jpeg`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

Array = np.ndarray

BROWN = np.array([0.36, 0.22, 0.13], np.float32)
DARK_BROWN = np.array([0.18, 0.10, 0.06], np.float32)
BLACK = np.array([0.07, 0.05, 0.05], np.float32)
BLUE_WHITE = np.array([0.55, 0.62, 0.76], np.float32)
BLUE_GREY = np.array([0.36, 0.42, 0.55], np.float32)
SCAR_WHITE = np.array([0.93, 0.90, 0.88], np.float32)
VESSEL_RED = np.array([0.78, 0.12, 0.18], np.float32)
SKIN_TONES = np.array(
    [[0.96, 0.80, 0.69], [0.92, 0.74, 0.60], [0.85, 0.64, 0.50], [0.72, 0.52, 0.38], [0.56, 0.38, 0.27]],
    np.float32,
)

# The clinical-only diagnosis cue: (halo colour, halo inner and outer radius, halo strength,
# lesion tint colour, tint strength, dark outline strength, apparent size factor).
DIAGNOSIS_CUES: Mapping[str, tuple] = {
    "BCC": ((0.97, 0.78, 0.80), 0.85, 1.25, 0.70, (0.95, 0.80, 0.82), 0.35, 0.0, 0.9),
    "SK": ((0.20, 0.14, 0.08), 0.92, 1.08, 0.85, (0.80, 0.66, 0.36), 0.45, 1.0, 1.0),
    "MEL": ((0.86, 0.36, 0.36), 1.00, 1.65, 0.55, (0.15, 0.10, 0.12), 0.30, 0.0, 1.25),
    "NEV": ((0.0, 0.0, 0.0), 1.0, 1.0, 0.0, (0.45, 0.30, 0.20), 0.15, 0.0, 0.8),
    "MISC": ((0.70, 0.35, 0.55), 0.95, 1.35, 0.45, (0.55, 0.20, 0.42), 0.50, 0.0, 1.0),
}
CUE_RELIABILITY = 0.75  # otherwise the cue of a diagnosis drawn uniformly at random

# What the skin around the lesion shows, by diagnosis (drawn right with CUE_RELIABILITY, independently of
# the cue above): chronic sun damage (scattered lentigines) around the keratinocyte lesions of older skin,
# diffuse erythema around the vascular and inflammatory lesions of MISC, clear skin otherwise.
SURROUNDING_SKIN: Mapping[str, str] = {
    "BCC": "sun-damaged",
    "SK": "sun-damaged",
    "MEL": "clear",
    "NEV": "clear",
    "MISC": "erythema",
}
# How far the lesion stands out of the skin (the release's ``elevation`` column): the height of its
# shading and cast shadow. A dermoscope pressed on the skin flattens this away.
ELEVATION_HEIGHT: Mapping[str, float] = {"flat": 0.0, "palpable": 0.5, "nodular": 1.0}
LIMBS = frozenset({"upper limbs", "lower limbs"})


@dataclass(frozen=True)
class Lesion:
    """Polar geometry of the lesion in the dermoscopic view (normalised coordinates in [-1, 1])."""

    cx: float
    cy: float
    radius: float
    harmonics: Array  # [K, 2]: amplitude and phase of boundary harmonics 2..K+1

    def boundary(self, theta: Array) -> Array:
        k = np.arange(2, 2 + len(self.harmonics), dtype=np.float32)[:, None, None]
        a, phase = self.harmonics[:, 0, None, None], self.harmonics[:, 1, None, None]
        return self.radius * (1 + np.sum(a * np.cos(k * theta[None] + phase), axis=0))


class Canvas:
    """Normalised pixel coordinates and their polar form relative to the lesion centre."""

    def __init__(self, size: int, lesion: Lesion) -> None:
        axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
        self.size = size
        self.x, self.y = np.meshgrid(axis, axis)
        dx, dy = self.x - lesion.cx, self.y - lesion.cy
        self.theta = np.arctan2(dy, dx)
        self.rho = np.hypot(dx, dy) / lesion.boundary(self.theta)  # 1 on the border
        self.lesion = lesion

    def mask(self, softness: float = 0.04) -> Array:
        return _sigmoid((1 - self.rho) / softness)


def _sigmoid(x: Array) -> Array:
    return 0.5 * (1 + np.tanh(0.5 * x))


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> Array:
    """Low-frequency noise in [0, 1]: a coarse random grid upsampled bicubically."""
    grid = Image.fromarray(rng.random((cells, cells), dtype=np.float32), mode="F")
    return np.clip(np.asarray(grid.resize((size, size), Image.Resampling.BICUBIC)), 0, 1)


def paint(img: Array, coverage: Array, colour, strength: float = 1.0) -> None:
    """Blend ``colour`` into ``img`` in place where ``coverage`` (0..1) is high."""
    alpha = np.clip(coverage * strength, 0, 1)[..., None]
    img *= 1 - alpha
    img += alpha * np.asarray(colour, np.float32)


def stamp_discs(layer: Array, centres: Array, radii: Array) -> None:
    """Antialiased discs (pixel units) maxed into ``layer``; cost grows with their area, not the image's."""
    size = layer.shape[0]
    for (cy, cx), r in zip(centres, radii, strict=True):
        y0, y1 = max(int(cy - r - 1), 0), min(int(cy + r + 2), size)
        x0, x1 = max(int(cx - r - 1), 0), min(int(cx + r + 2), size)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        disc = np.clip(r + 0.5 - np.hypot(yy + 0.5 - cy, xx + 0.5 - cx), 0, 1)
        np.maximum(layer[y0:y1, x0:x1], disc, out=layer[y0:y1, x0:x1])


def _points_in_lesion(rng: np.random.Generator, canvas: Canvas, n: int, rho_range=(0.0, 0.9)) -> Array:
    """``n`` pixel positions inside the lesion at relative radius in ``rho_range``."""
    theta = rng.uniform(-np.pi, np.pi, n).astype(np.float32)
    rho = np.sqrt(rng.uniform(rho_range[0] ** 2, rho_range[1] ** 2, n)).astype(np.float32)
    r = rho * canvas.lesion.boundary(theta[None])[0]
    x = (canvas.lesion.cx + r * np.cos(theta) + 1) / 2 * canvas.size
    y = (canvas.lesion.cy + r * np.sin(theta) + 1) / 2 * canvas.size
    return np.stack([y, x], axis=1)


def _curve(rng: np.random.Generator, start: Array, steps: int, step: float, wiggle: float) -> Array:
    """A random walk with inertia: smooth for small ``wiggle``, jagged for large."""
    heading = rng.uniform(0, 2 * np.pi)
    points = [start]
    for _ in range(steps):
        heading += rng.normal(0, wiggle)
        points.append(points[-1] + step * np.array([np.sin(heading), np.cos(heading)]))
    return np.array(points, np.float32)


# --- the seven-point criteria, one function each, keyed by raw label string ---------------------


def draw_network(img: Array, canvas: Canvas, rng: np.random.Generator, raw: str) -> None:
    if raw == "absent":
        return
    atypical = raw == "atypical"
    cells = rng.uniform(9, 13) if not atypical else rng.uniform(7, 11)
    angle = rng.uniform(0, np.pi)
    u = canvas.x * np.cos(angle) + canvas.y * np.sin(angle)
    v = -canvas.x * np.sin(angle) + canvas.y * np.cos(angle)
    if atypical:  # warped, uneven meshes with thick, broken lines
        warp = smooth_noise(rng, canvas.size, 5) - 0.5
        u, v = u + 0.12 * warp, v - 0.12 * warp.T
    width = 0.16 if not atypical else 0.28
    lines = np.maximum(
        np.exp(-(np.sin(np.pi * cells * u) ** 2) / width**2),
        np.exp(-(np.sin(np.pi * cells * v) ** 2) / width**2),
    )
    region = canvas.mask(0.08) * _sigmoid((0.95 - canvas.rho) / 0.1)
    if atypical:
        region *= smooth_noise(rng, canvas.size, 6) > 0.35
        paint(img, lines * region, BLACK, 0.85)
    else:
        paint(img, lines * region, BROWN, 0.6)


def draw_streaks(img: Array, canvas: Canvas, rng: np.random.Generator, raw: str) -> None:
    if raw == "absent":
        return
    count = int(rng.integers(24, 36))
    phase = rng.uniform(0, 2 * np.pi)
    spokes = np.cos(count * canvas.theta + phase) ** 24
    reach = 1.28 + np.zeros_like(canvas.theta)
    if raw == "irregular":  # only in one or two sectors, with uneven lengths
        centre = rng.uniform(-np.pi, np.pi)
        width = rng.uniform(0.5, 1.2)
        sector = np.cos(canvas.theta - centre) > np.cos(width)
        spokes = spokes * sector
        reach = 1.05 + 0.4 * smooth_noise(rng, canvas.size, 9)
    band = _sigmoid((canvas.rho - 0.8) / 0.04) * _sigmoid((reach - canvas.rho) / 0.03)
    paint(img, spokes * band, DARK_BROWN, 0.9)


def draw_pigmentation(img: Array, canvas: Canvas, rng: np.random.Generator, raw: str) -> None:
    if raw == "absent":
        return
    extent = 0.65 if raw.startswith("diffuse") else 0.35
    if raw.endswith("irregular"):  # an off-centre, ragged, very dark blotch
        angle, offset = rng.uniform(-np.pi, np.pi), rng.uniform(0.25, 0.5)
        cx = canvas.lesion.cx + offset * canvas.lesion.radius * np.cos(angle)
        cy = canvas.lesion.cy + offset * canvas.lesion.radius * np.sin(angle)
        d = np.hypot(canvas.x - cx, canvas.y - cy) / (extent * canvas.lesion.radius)
        d = d + 0.5 * (smooth_noise(rng, canvas.size, 7) - 0.5)
        paint(img, _sigmoid((1 - d) / 0.05) * canvas.mask(), BLACK, 0.85)
    else:  # a symmetric, smooth central darkening
        paint(img, _sigmoid((extent - canvas.rho) / 0.12) * canvas.mask(), DARK_BROWN, 0.6)


def draw_dots(img: Array, canvas: Canvas, rng: np.random.Generator, raw: str) -> None:
    if raw == "absent":
        return
    layer = np.zeros((canvas.size, canvas.size), np.float32)
    unit = canvas.size / 100
    if raw == "regular":  # a tidy lattice of equal brown dots in the centre
        step = rng.uniform(7, 9) * unit
        centre = np.array([(canvas.lesion.cy + 1) / 2, (canvas.lesion.cx + 1) / 2]) * canvas.size
        offsets = np.arange(-3, 4) * step
        grid = np.stack(np.meshgrid(offsets, offsets), -1).reshape(-1, 2) + centre
        grid = grid[np.hypot(*(grid - centre).T) < 3.2 * step]
        stamp_discs(layer, grid, np.full(len(grid), 1.3 * unit))
        paint(img, layer, DARK_BROWN, 0.9)
    else:  # scattered black dots of mixed size, crowding the periphery
        n = int(rng.integers(25, 45))
        points = _points_in_lesion(rng, canvas, n, (0.45, 1.0))
        stamp_discs(layer, points, rng.uniform(0.6, 2.4, n) * unit)
        paint(img, layer, BLACK, 0.95)


def draw_veil(img: Array, canvas: Canvas, rng: np.random.Generator, raw: str) -> None:
    if raw == "absent":
        return
    (cy, cx) = _points_in_lesion(rng, canvas, 1, (0.0, 0.4))[0] / canvas.size * 2 - 1
    d = np.hypot(canvas.x - cx, canvas.y - cy) / (0.55 * canvas.lesion.radius)
    d = d + 0.35 * (smooth_noise(rng, canvas.size, 6) - 0.5)
    haze = _sigmoid((1 - d) / 0.15) * canvas.mask() * (0.75 + 0.25 * smooth_noise(rng, canvas.size, 24))
    paint(img, haze, BLUE_WHITE, 0.8)


def draw_regression(img: Array, canvas: Canvas, rng: np.random.Generator, raw: str) -> None:
    if raw == "absent":
        return
    unit = canvas.size / 100
    if raw in ("white areas", "combinations"):  # scar-like white patches
        patches = smooth_noise(rng, canvas.size, 8) > 0.62
        paint(img, patches * canvas.mask() * _sigmoid((0.85 - canvas.rho) / 0.05), SCAR_WHITE, 0.85)
    if raw in ("blue areas", "combinations"):  # blue-grey peppering in a patch
        layer = np.zeros((canvas.size, canvas.size), np.float32)
        centre = _points_in_lesion(rng, canvas, 1, (0.2, 0.6))[0]
        n = int(rng.integers(60, 90))
        spread = 0.25 * canvas.lesion.radius * canvas.size
        stamp_discs(layer, centre + rng.normal(0, spread, (n, 2)), rng.uniform(0.4, 0.9, n) * unit)
        paint(img, layer * canvas.mask(), BLUE_GREY, 0.9)


def draw_vessels(img: Array, canvas: Canvas, rng: np.random.Generator, raw: str) -> None:
    if raw == "absent":
        return
    unit = canvas.size / 100
    layer = np.zeros((canvas.size, canvas.size), np.float32)
    if raw == "dotted":
        n = int(rng.integers(30, 60))
        stamp_discs(layer, _points_in_lesion(rng, canvas, n, (0.0, 0.9)), np.full(n, 0.9 * unit))
    else:
        jagged = raw == "linear irregular"
        count = int(rng.integers(3, 6))
        for start in _points_in_lesion(rng, canvas, count, (0.0, 0.7)):
            path = _curve(rng, start, 24, 0.9 * unit, 0.9 if jagged else 0.15)
            stamp_discs(layer, path, np.full(len(path), (0.5 if jagged else 0.8) * unit))
            if raw == "arborizing":  # branches
                for branch_start in path[8::8]:
                    branch = _curve(rng, branch_start, 10, 0.8 * unit, 0.2)
                    stamp_discs(layer, branch, np.full(len(branch), 0.5 * unit))
    paint(img, layer, VESSEL_RED, 0.9)


CRITERIA_DRAWERS = {
    "pigment_network": draw_network,
    "pigmentation": draw_pigmentation,
    "blue_whitish_veil": draw_veil,
    "regression_structures": draw_regression,
    "dots_and_globules": draw_dots,
    "streaks": draw_streaks,
    "vascular_structures": draw_vessels,
}


def random_lesion(rng: np.random.Generator) -> Lesion:
    harmonics = np.stack([rng.normal(0, 0.05, 4), rng.uniform(0, 2 * np.pi, 4)], axis=1).astype(np.float32)
    return Lesion(
        float(rng.normal(0, 0.06)), float(rng.normal(0, 0.06)), float(rng.uniform(0.5, 0.62)), harmonics
    )


def render_dermoscopy(
    rng: np.random.Generator, size: int, raw: Mapping[str, str], skin: Array
) -> tuple[Array, Lesion]:
    """The close-up: skin under polarised light, a brown lesion and one pattern per present criterion.

    The lesion's own colour and outline are drawn independently of the diagnosis, so the diagnosis
    can only be inferred from the criteria here.
    """
    lesion = random_lesion(rng)
    canvas = Canvas(size, lesion)
    img = np.empty((size, size, 3), np.float32)
    img[:] = skin * (0.92 + 0.08 * smooth_noise(rng, size, 4))[..., None]
    base = BROWN + rng.uniform(0.12, 0.3) * (skin - BROWN)
    paint(img, canvas.mask() * (0.85 + 0.15 * smooth_noise(rng, size, 10)), base, 0.9)
    for column, drawer in CRITERIA_DRAWERS.items():
        drawer(img, canvas, rng, raw[column])
    vignette = 1 - 0.35 * np.clip(np.hypot(canvas.x, canvas.y) - 0.9, 0, None)
    img *= vignette[..., None]
    img += rng.normal(0, 0.012, img.shape).astype(np.float32)
    return np.clip(img, 0, 1), lesion


def render_clinical(
    rng: np.random.Generator,
    size: int,
    dermoscopy: Array,
    lesion: Lesion,
    diagnosis: str,
    skin: Array,
    context: Mapping[str, str] | None = None,
) -> Array:
    """The same lesion photographed from further away, with what only a clinical photograph shows.

    The close-up is shrunk (lower resolution) and pasted on skin with uneven lighting. Evidence the
    close-up lacks: the diagnosis cue (halo, tint, outline, apparent size; ``DIAGNOSIS_CUES``) and the
    surrounding skin (``SURROUNDING_SKIN``), each right with probability ``CUE_RELIABILITY``; the
    lesion's elevation as shading and a cast shadow; its body site (hair on the head and neck, the
    ridged skin of palms and soles, a limb's edges). ``context`` holds the row's raw ``elevation`` and
    ``location`` (none: flat, trunk). Then perspective, blur and noise.
    """
    context = context or {}
    cue_class = diagnosis if rng.random() < CUE_RELIABILITY else str(rng.choice(list(DIAGNOSIS_CUES)))
    surround_class = diagnosis if rng.random() < CUE_RELIABILITY else str(rng.choice(list(DIAGNOSIS_CUES)))
    height = ELEVATION_HEIGHT.get(context.get("elevation", "flat"), 0.0)
    location = context.get("location", "")
    cue = DIAGNOSIS_CUES[cue_class]
    size_factor = cue[-1]
    scale = float(np.clip(rng.normal(0.42, 0.04) * size_factor, 0.25, 0.62))
    patch_side = max(8, int(size * scale))
    patch = _shrink(dermoscopy, patch_side)
    img, x, y, light = _lit_skin(rng, size, skin, location)
    _draw_surrounding_skin(img, rng, SURROUNDING_SKIN[surround_class], skin)
    # paste the close-up's lesion (not its skin) at a random spot
    top, left = (
        int(rng.integers(size // 8, max(size // 8 + 1, size - patch_side - size // 8))) for _ in range(2)
    )
    region = img[top : top + patch_side, left : left + patch_side]
    _draw_clinical_lesion(region, patch, lesion, cue, height, light, skin)
    _draw_site_edges(img, rng, location, x, y)
    return _photograph(img, rng, skin)


def _shrink(image: Array, side: int) -> Array:
    """``image`` box-resampled to ``side`` pixels a side, as a photograph from further away resolves it."""
    return (
        np.asarray(
            Image.fromarray((image * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BOX),
            np.float32,
        )
        / 255
    )


def _lit_skin(
    rng: np.random.Generator, size: int, skin: Array, location: str
) -> tuple[Array, Array, Array, Array]:
    """Skin lit from one side, with the ridges of palms and soles when ``location`` is acral.

    Returns the image, its x and y coordinates in [-1, 1] and the light's direction.
    """
    img = np.empty((size, size, 3), np.float32)
    img[:] = skin
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(axis, axis)
    light = rng.normal(0, 1, 2)
    light /= np.hypot(*light) + 1e-6
    img *= (1 + 0.12 * (light[0] * x + light[1] * y))[..., None]
    if location == "acral":  # the parallel ridges of palms and soles
        angle = rng.uniform(0, np.pi)
        ridges = np.sin(np.pi * rng.uniform(14, 18) * (x * np.cos(angle) + y * np.sin(angle)))
        paint(img, (ridges > 0.3).astype(np.float32), 0.8 * skin, 0.5)
    return img, x, y, light


def _draw_clinical_lesion(
    region: Array, patch: Array, lesion: Lesion, cue: tuple, height: float, light: Array, skin: Array
) -> None:
    """The shrunk close-up's lesion pasted into ``region`` with its cast shadow, diagnosis cue and dome."""
    halo, r_in, r_out, halo_strength, tint, tint_strength, outline, _ = cue
    patch_side = len(patch)
    local = Canvas(patch_side, lesion)
    if height > 0:  # the shadow a raised lesion casts away from the light
        shift = 0.35 * height * lesion.radius
        shadow = Canvas(
            patch_side,
            Lesion(
                lesion.cx - shift * light[0], lesion.cy - shift * light[1], lesion.radius, lesion.harmonics
            ),
        ).mask(0.12)
        paint(region, shadow * (1 - local.mask(0.04)), 0.35 * skin, 0.8 * height)
    alpha = local.mask(0.08)[..., None]
    region[:] = region * (1 - alpha) + patch * alpha
    # the diagnosis cue, drawn in the patch's polar frame
    if halo_strength > 0:
        ring = _sigmoid((local.rho - r_in) / 0.05) * _sigmoid((r_out - local.rho) / 0.08)
        paint(region, ring, halo, halo_strength)
    paint(region, local.mask(), tint, tint_strength)
    if outline > 0:
        paint(region, np.exp(-(((local.rho - 1.0) / 0.06) ** 2)), halo, outline * 0.9)
    if height > 0:  # a dome lit from one side: bright towards the light, dark away from it
        slope = ((local.x - lesion.cx) * light[0] + (local.y - lesion.cy) * light[1]) / lesion.radius
        dome = local.mask() * np.clip(slope, -1, 1) * height
        paint(region, np.clip(dome, 0, 1), (1.0, 0.97, 0.94), 0.7)
        paint(region, np.clip(-dome, 0, 1), (0.05, 0.03, 0.03), 0.6)


def _draw_site_edges(img: Array, rng: np.random.Generator, location: str, x: Array, y: Array) -> None:
    """What the body site puts in the frame: hair on the head and neck, the background beside a limb.

    Elsewhere, half the time, cloth or a dark room behind the patient at one edge.
    """
    if location == "head neck":  # hair crossing the frame
        _draw_hair(img, rng)
    if location in LIMBS:  # a limb: background on both sides
        angle = rng.uniform(0, np.pi)
        across = x * np.cos(angle) + y * np.sin(angle)
        reach = rng.uniform(0.6, 0.8)
        paint(img, _sigmoid((np.abs(across) - reach) / 0.03), rng.uniform(0.05, 0.6, 3), 1.0)
    elif rng.random() < 0.5:  # cloth or a dark room behind the patient at one edge
        edge = rng.integers(4)
        band = _sigmoid(((x, -x, y, -y)[edge] - rng.uniform(0.55, 0.85)) / 0.02)
        paint(img, band, rng.uniform(0.05, 0.6, 3), 1.0)


def _photograph(img: Array, rng: np.random.Generator, skin: Array) -> Array:
    """Sensor noise, a slightly tilted camera (perspective, skin-coloured fill) and a little defocus blur."""
    size = img.shape[0]
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    photo = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    k = 0.12
    coeffs = (1 + rng.uniform(-k, k), rng.uniform(-k, k), 0, rng.uniform(-k, k), 1 + rng.uniform(-k, k), 0)
    coeffs += (rng.uniform(-k, k) / size, rng.uniform(-k, k) / size)
    fill = tuple(int(c * 255) for c in skin)
    photo = photo.transform(
        (size, size), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR, fillcolor=fill
    )
    photo = photo.filter(ImageFilter.GaussianBlur(radius=size / rng.uniform(150, 300)))
    return np.asarray(photo, np.float32) / 255


def _draw_surrounding_skin(img: Array, rng: np.random.Generator, kind: str, skin: Array) -> None:
    """Sun damage (tan macules of mixed size) or erythema (a reddened blotchy field) on the whole skin."""
    size = img.shape[0]
    if kind == "sun-damaged":
        layer = np.zeros((size, size), np.float32)
        n = int(rng.integers(25, 45))
        stamp_discs(layer, rng.uniform(0, size, (n, 2)), rng.uniform(0.8, 2.2, n) * size / 100)
        paint(img, layer, 0.6 * skin + 0.4 * BROWN, 0.8)
    elif kind == "erythema":
        blotches = smooth_noise(rng, size, 5)
        paint(img, _sigmoid((blotches - 0.35) / 0.1), (0.86, 0.42, 0.40), 0.45)


def _draw_hair(img: Array, rng: np.random.Generator) -> None:
    """Dark hair strands entering the frame from one side, as on the scalp, beard or neck."""
    size = img.shape[0]
    unit = size / 100
    layer = np.zeros((size, size), np.float32)
    side = rng.integers(4)
    for _ in range(int(rng.integers(12, 20))):
        along, depth = rng.uniform(0, size), rng.uniform(0, 0.3 * size)
        start = np.array([(depth, along), (size - depth, along), (along, depth), (along, size - depth)][side])
        path = _curve(rng, start, 30, 1.5 * unit, 0.08)
        stamp_discs(layer, path, np.full(len(path), 0.45 * unit))
    paint(img, layer, rng.choice([BLACK, DARK_BROWN, (0.55, 0.45, 0.35)]), 0.9)


def save_jpeg(image: Array, path: Path, quality: int) -> None:
    """Write a drawn image (float RGB in [0, 1], rounded to 8 bits) as a JPEG, making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path, "JPEG", quality=quality)


def skin_tone(rng: np.random.Generator) -> Array:
    weights = rng.random(len(SKIN_TONES)) ** 4
    return (weights / weights.sum()) @ SKIN_TONES
