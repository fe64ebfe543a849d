"""Training-time data augmentation in NumPy (and Pillow for the per-image RandAugment ops).

Legend: B batch, Hi x Wi image height and width, C channels (1 = grey digits, 3 = RGB), K classes.

The paper follows DeiT's augmentation (Section V-A); docs/conventions.md#training adapts it to small images: random
crop with zero padding, horizontal flip (off for digits, where a flip changes the class), RandAugment,
random erasing; mixup/cutmix and label smoothing optional (off in the released recipe). The pipeline of
``build_train_transform``, in DeiT/timm order:

    uint8 (B, H, W, C) --crop--flip--RandAugment--> uint8 (B, H, W, C)
        --normalise--> float32 (B, C, H, W) --random erasing--mixup/cutmix--> model input, targets

Everything random draws from the ``numpy.random.Generator`` passed in (never global state), all draws
of a step are made up front as arrays, so the same seed gives the same output bit for bit. Crop, flip,
erasing and mixup/cutmix are vectorised over the batch; RandAugment applies different Pillow ops to
each image, so it loops over the images (the ops themselves run in C).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from .._validate import as_float_array, check_choice, check_float, check_int

__all__ = [
    "RAND_AUGMENT_OPS", "to_model_input", "Normalize", "eval_transform", "random_crop",
    "random_hflip", "rand_augment", "random_erasing", "one_hot", "mixup_cutmix", "Augment",
    "TrainTransform", "build_train_transform",
]

# The RandAugment op set (timm's "increasing" variants: a larger magnitude is always a stronger change).
RAND_AUGMENT_OPS = ("identity", "autocontrast", "equalize", "rotate", "solarize", "posterize",
                    "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x",
                    "translate_y")
_MAX_MAGNITUDE = 10.0  # magnitudes live in [0, 10] (timm's _LEVEL_DENOM)
_ERASE_MODES = ("const", "rand", "pixel")


# ----------------------------------------------------------------------------------------- checks
def _check_images(x, name: str = "x") -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of uint8 images (B, H, W, C), "
                        f"got {type(x).__name__}")
    if x.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8 (B, H, W, C), got {x.dtype}")
    if x.ndim != 4 or x.shape[3] not in (1, 3) or min(x.shape[1:3]) < 1:
        raise ValueError(f"{name} must have shape (B, H, W, C) with C = 1 or 3, got {x.shape}")
    return x


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    return rng


def _check_prob(p, name: str) -> float:
    return check_float(p, name, lo=0.0, hi=1.0)


def _check_range(r, name: str, *, lo: float, hi: float | None = None) -> tuple[float, float]:
    if not isinstance(r, (tuple, list)) or len(r) != 2:
        raise TypeError(f"{name} must be a pair (low, high), got {r!r}")
    a = check_float(r[0], f"{name}[0]", lo=lo, lo_open=True, hi=hi)
    b = check_float(r[1], f"{name}[1]", lo=lo, lo_open=True, hi=hi)
    if a > b:
        raise ValueError(f"{name} must have low <= high, got {r!r}")
    return a, b


def _check_labels(y, B: int, name: str = "y") -> np.ndarray:
    if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.integer):
        what = y.dtype if isinstance(y, np.ndarray) else type(y).__name__
        raise TypeError(f"{name} must be a numpy.ndarray of integer labels, got {what}")
    if y.shape != (B,):
        raise ValueError(f"{name} must have shape (B,) = ({B},), got {y.shape}")
    return y


def _check_mean_std(mean, std) -> tuple[np.ndarray, np.ndarray]:
    m = np.atleast_1d(np.asarray(mean, dtype=np.float64))
    s = np.atleast_1d(np.asarray(std, dtype=np.float64))
    for a, name in ((m, "mean"), (s, "std")):
        if a.ndim != 1 or a.size not in (1, 3):
            raise ValueError(f"{name} must have one value per channel (1 or 3), got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} must be finite, got {a}")
    if m.size != s.size:
        raise ValueError(f"mean and std must have the same length, got {m.size} and {s.size}")
    if (s <= 0).any():
        raise ValueError(f"std must be > 0, got {s}")
    return m, s


# ------------------------------------------------------------------------------------ normalise
def to_model_input(x: np.ndarray, mean, std) -> np.ndarray:
    """uint8 images -> the model's float input: ``(x / 255 - mean) / std``, channels first.

    Args:
        x: (B, H, W, C) uint8.
        mean, std: per-channel statistics of ``x / 255`` (length C).
    Returns:
        (B, C, H, W) float32, C-contiguous.
    """
    x = _check_images(x)
    m, s = _check_mean_std(mean, std)
    C = x.shape[3]
    if m.size != C:
        raise ValueError(f"mean/std have {m.size} channels, images have C = {C}")
    scale = (1.0 / (255.0 * s)).astype(np.float32)[:, None, None]  # (C, 1, 1)
    shift = (m / s).astype(np.float32)[:, None, None]  # (C, 1, 1)
    out = np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)  # (B, C, H, W)
    out *= scale
    out -= shift
    return out


class Normalize:
    """``Normalize(mean, std)(x)`` = ``to_model_input(x, mean, std)``, statistics checked once."""

    def __init__(self, mean, std):
        self.mean, self.std = _check_mean_std(mean, std)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return to_model_input(x, self.mean, self.std)

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def eval_transform(x: np.ndarray, mean, std) -> np.ndarray:
    """Evaluation transform: normalisation only (no randomness). (B, H, W, C) uint8 -> (B, C, H, W)
    float32."""
    return to_model_input(x, mean, std)


# --------------------------------------------------------------------------------- crop and flip
def random_crop(x: np.ndarray, rng: np.random.Generator, padding: int) -> np.ndarray:
    """Pad every image with ``padding`` zero pixels on each side, then crop an H x W window at a
    uniformly random offset per image (``torchvision.RandomCrop(size, padding)``).

    Vectorised: the batch is padded once and the windows gathered with one fancy index.

    Args:
        x: (B, H, W, C) uint8. rng: the generator. padding: int >= 0 (0 returns a copy).
    Returns:
        (B, H, W, C) uint8.
    """
    x = _check_images(x)
    rng = _check_rng(rng)
    padding = check_int(padding, "padding", lo=0)
    B, H, W, C = x.shape
    if padding == 0:
        return x.copy()
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))  # (B, H+2p, W+2p, C)
    oy = rng.integers(0, 2 * padding + 1, size=B)  # (B,) top of each window in the padded image
    ox = rng.integers(0, 2 * padding + 1, size=B)  # (B,)
    rows = oy[:, None] + np.arange(H)  # (B, H)
    cols = ox[:, None] + np.arange(W)  # (B, W)
    return xp[np.arange(B)[:, None, None], rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)


def random_hflip(x: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror each image left-right with probability ``p`` (vectorised over the batch).

    Args:
        x: (B, H, W, C) uint8. rng: the generator. p: flip probability in [0, 1].
    Returns:
        (B, H, W, C) uint8, a new array.
    """
    x = _check_images(x)
    rng = _check_rng(rng)
    p = _check_prob(p, "p")
    flip = rng.random(x.shape[0]) < p  # (B,)
    return np.where(flip[:, None, None, None], x[:, :, ::-1], x)


# ----------------------------------------------------------------------------------- RandAugment
def _apply_op(img: Image.Image, op: str, level: float, sign: float, fill) -> Image.Image:
    """One RandAugment op at ``level = magnitude / 10`` in [0, 1]; ``sign`` = +-1 for the symmetric
    ops. Ranges at level 1 (timm's): rotate 30 deg, shear 0.3, translate 45% of the side, enhance
    factor 1 +- 0.9, solarize threshold 0 (all inverted), posterize to 4 bits. Note: Pillow's
    equalize leaves images of fewer than 256 pixels (e.g. 8 x 8 digits) unchanged."""
    if op == "identity":
        return img
    if op == "autocontrast":
        return ImageOps.autocontrast(img)
    if op == "equalize":
        return ImageOps.equalize(img)
    if op == "solarize":  # invert every pixel >= threshold; threshold 256 = no change
        return ImageOps.solarize(img, threshold=int(round(256 * (1.0 - level))))
    if op == "posterize":  # keep the top `bits` bits, 8 (no change) down to 4
        return ImageOps.posterize(img, 8 - int(round(4 * level)))
    if op in ("contrast", "brightness", "sharpness"):
        enhancer = {"contrast": ImageEnhance.Contrast, "brightness": ImageEnhance.Brightness,
                    "sharpness": ImageEnhance.Sharpness}[op]
        return enhancer(img).enhance(1.0 + sign * 0.9 * level)
    if op == "rotate":
        return img.rotate(sign * 30.0 * level, resample=Image.Resampling.BILINEAR, fillcolor=fill)
    # Affine ops: PIL maps each output pixel (u, v) to the input (a u + b v + c, d u + e v + f).
    w, h = img.size
    coeffs = {"shear_x": (1, sign * 0.3 * level, 0, 0, 1, 0),
              "shear_y": (1, 0, 0, sign * 0.3 * level, 1, 0),
              "translate_x": (1, 0, sign * 0.45 * level * w, 0, 1, 0),
              "translate_y": (1, 0, 0, 0, 1, sign * 0.45 * level * h)}[op]
    return img.transform(img.size, Image.Transform.AFFINE, coeffs,
                         resample=Image.Resampling.BILINEAR, fillcolor=fill)


def rand_augment(x: np.ndarray, rng: np.random.Generator, num_ops: int = 2, magnitude: float = 9.0,
                 magnitude_std: float = 0.5, prob: float = 0.5, ops=RAND_AUGMENT_OPS,
                 fill=128) -> np.ndarray:
    """RandAugment (timm's ``rand-m9-mstd0.5``, the DeiT recipe): per image, ``num_ops`` ops drawn
    with replacement from ``ops``; each is applied with probability ``prob`` at magnitude
    ``clip(N(magnitude, magnitude_std), 0, 10)`` and a random sign for the symmetric ops.

    Works for grey (C = 1, Pillow mode "L") and RGB images. All random choices are drawn up front as
    (B, num_ops) arrays; the loop over images only calls Pillow.

    Args:
        x: (B, H, W, C) uint8. rng: the generator.
        num_ops: ops per image, >= 0 (0 returns a copy).
        magnitude: in [0, 10]. magnitude_std: >= 0, per-op Gaussian noise on the magnitude.
        prob: probability that each chosen op is applied.
        ops: names from ``RAND_AUGMENT_OPS``.
        fill: value of the pixels that geometric ops bring in: an int, or one int per channel.
    Returns:
        (B, H, W, C) uint8.
    """
    x = _check_images(x)
    rng = _check_rng(rng)
    num_ops = check_int(num_ops, "num_ops", lo=0)
    magnitude = check_float(magnitude, "magnitude", lo=0.0, hi=_MAX_MAGNITUDE)
    magnitude_std = check_float(magnitude_std, "magnitude_std", lo=0.0)
    prob = _check_prob(prob, "prob")
    ops = tuple(ops)
    if not ops:
        raise ValueError("ops must name at least one RandAugment op")
    for op in ops:
        check_choice(op, RAND_AUGMENT_OPS, "ops entry")
    B, H, W, C = x.shape
    fill_arr = np.atleast_1d(np.asarray(fill))
    if (fill_arr.ndim != 1 or fill_arr.size not in (1, C) or not np.issubdtype(fill_arr.dtype, np.integer)
            or fill_arr.min() < 0 or fill_arr.max() > 255):
        raise ValueError(f"fill must be an int in [0, 255] or one such int per channel (C = {C}), "
                         f"got {fill!r}")
    fill_arr = np.broadcast_to(fill_arr, (C,))
    fill_px = int(fill_arr[0]) if C == 1 else tuple(int(v) for v in fill_arr)

    out = x.copy()
    if num_ops == 0:
        return out
    which = rng.integers(0, len(ops), size=(B, num_ops))  # (B, n) op index
    apply = rng.random((B, num_ops)) < prob  # (B, n)
    mags = np.full((B, num_ops), magnitude)
    if magnitude_std > 0:
        mags = np.clip(magnitude + magnitude_std * rng.standard_normal((B, num_ops)),
                       0.0, _MAX_MAGNITUDE)  # (B, n)
    signs = np.where(rng.random((B, num_ops)) < 0.5, -1.0, 1.0)  # (B, n)
    for b in np.flatnonzero(apply.any(axis=1)):  # images with no applied op stay as they are
        img = Image.fromarray(x[b, :, :, 0] if C == 1 else x[b])  # mode "L" or "RGB"
        for j in np.flatnonzero(apply[b]):
            img = _apply_op(img, ops[which[b, j]], mags[b, j] / _MAX_MAGNITUDE, signs[b, j], fill_px)
        out[b] = np.asarray(img).reshape(H, W, C)
    return out


# -------------------------------------------------------------------------------- random erasing
def random_erasing(x: np.ndarray, rng: np.random.Generator, prob: float = 0.25,
                   area: tuple[float, float] = (0.02, 1 / 3),
                   aspect: tuple[float, float] = (0.3, 1 / 0.3), mode: str = "pixel") -> np.ndarray:
    """Random erasing (Zhong et al.; timm's ``RandomErasing``) on normalised images.

    With probability ``prob`` per image, one rectangle of area ``U(area) * H * W`` and aspect ratio
    (h / w) log-uniform in ``aspect`` is placed uniformly inside the image and overwritten. As in
    timm, up to 10 (area, aspect) draws are tried and the first that fits (h < H and w < W) is used;
    if none fits the image is left alone. Vectorised: all attempts are drawn as (B, 10) arrays and the
    rectangles applied as one (B, 1, H, W) mask.

    Args:
        x: (B, C, H, W) float, already normalised. rng: the generator.
        prob: erasing probability per image.
        area: (low, high) fraction of the image area, in (0, 1].
        aspect: (low, high) aspect-ratio range, > 0.
        mode: the new values: "const" = 0 (the dataset mean after normalisation), "rand" = one
            standard-normal value per channel, "pixel" = standard-normal per pixel (DeiT's default).
    Returns:
        (B, C, H, W), ``x``'s dtype, a new array.
    """
    x = as_float_array(x, "x", ndim=4)
    rng = _check_rng(rng)
    prob = _check_prob(prob, "prob")
    area = _check_range(area, "area", lo=0.0, hi=1.0)
    aspect = _check_range(aspect, "aspect", lo=0.0)
    check_choice(mode, _ERASE_MODES, "mode")
    B, C, H, W = x.shape
    attempts = 10
    do = rng.random(B) < prob  # (B,)
    target = rng.uniform(area[0], area[1], size=(B, attempts)) * (H * W)  # (B, A) pixels
    ratio = np.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1]), size=(B, attempts)))
    h = np.round(np.sqrt(target * ratio)).astype(np.int64)  # (B, A)
    w = np.round(np.sqrt(target / ratio)).astype(np.int64)  # (B, A)
    fits = (h < H) & (w < W)  # (B, A)
    first = fits.argmax(axis=1)  # (B,) first fitting attempt (0 when none fits: masked by `do`)
    do &= fits.any(axis=1)
    hb = np.where(do, h[np.arange(B), first], 0)  # (B,)
    wb = np.where(do, w[np.arange(B), first], 0)  # (B,)
    # Top-left corner uniform over the integer positions 0..H-h (inclusive, as random.randint).
    top = np.floor(rng.random(B) * (H - hb + 1)).astype(np.int64)  # (B,)
    left = np.floor(rng.random(B) * (W - wb + 1)).astype(np.int64)  # (B,)
    r = np.arange(H)[None, :, None]  # (1, H, 1)
    c = np.arange(W)[None, None, :]  # (1, 1, W)
    mask = ((r >= top[:, None, None]) & (r < (top + hb)[:, None, None])
            & (c >= left[:, None, None]) & (c < (left + wb)[:, None, None]))  # (B, H, W)
    mask = np.broadcast_to(mask[:, None], (B, C, H, W))  # same rectangle in every channel
    out = x.copy()
    if mode == "const":
        out[mask] = 0.0
    elif mode == "rand":
        vals = rng.standard_normal((B, C, 1, 1)).astype(x.dtype)  # (B, C, 1, 1)
        out[mask] = np.broadcast_to(vals, x.shape)[mask]
    else:
        out[mask] = rng.standard_normal(int(mask.sum())).astype(x.dtype)
    return out


# --------------------------------------------------------------------------- targets and mixing
def one_hot(y: np.ndarray, num_classes: int, label_smoothing: float = 0.0,
            dtype=np.float32) -> np.ndarray:
    """Integer labels -> (B, K) target rows ``(1 - eps) onehot + eps / K`` (timm's smoothing).

    Args:
        y: (B,) integer labels in [0, K). num_classes: K >= 1. label_smoothing: eps in [0, 1].
    Returns:
        (B, K) in ``dtype``; each row sums to 1.
    """
    num_classes = check_int(num_classes, "num_classes", lo=1)
    if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
        what = f"{y.dtype} {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
        raise TypeError(f"y must be a 1-D numpy.ndarray of integer labels, got {what}")
    eps = check_float(label_smoothing, "label_smoothing", lo=0.0, hi=1.0)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"y labels must be in [0, {num_classes - 1}], got min {y.min()}, max {y.max()}")
    off = eps / num_classes
    t = np.full((y.shape[0], num_classes), off, dtype=dtype)  # (B, K)
    t[np.arange(y.shape[0]), y] = 1.0 - eps + off
    return t


def mixup_cutmix(x: np.ndarray, y_onehot: np.ndarray, rng: np.random.Generator,
                 mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0, prob: float = 1.0,
                 switch_prob: float = 0.5):
    """Mixup or CutMix of a batch with its own reverse (timm's ``Mixup``, mode "batch").

    With probability ``prob`` the batch is mixed with ``x[::-1]`` using one ``lam ~ Beta(a, a)`` for
    the whole batch: CutMix (when ``cutmix_alpha > 0``, chosen with probability ``switch_prob`` if
    mixup is also on) pastes a box of relative side ``sqrt(1 - lam)`` centred uniformly (clipped to
    the image) from the partner image and then sets ``lam = 1 - box_area / (H W)``; Mixup blends
    ``lam x + (1 - lam) x[::-1]``. Targets mix the same way: ``lam y + (1 - lam) y[::-1]``.

    Args:
        x: (B, C, H, W) float images (normalised). y_onehot: (B, K) float target rows (one-hot,
            possibly label-smoothed by ``one_hot``). rng: the generator.
        mixup_alpha, cutmix_alpha: Beta parameters, >= 0 (0 disables that kind).
        prob: probability of mixing this batch. switch_prob: probability of CutMix when both are on.
    Returns:
        (x_mixed (B, C, H, W), targets (B, K)), new arrays in the input dtypes.
    """
    x = as_float_array(x, "x", ndim=4)
    y_onehot = as_float_array(y_onehot, "y_onehot", ndim=2)
    if y_onehot.shape[0] != x.shape[0]:
        raise ValueError(f"y_onehot must have one row per image ({x.shape[0]}), got {y_onehot.shape}")
    rng = _check_rng(rng)
    mixup_alpha = check_float(mixup_alpha, "mixup_alpha", lo=0.0)
    cutmix_alpha = check_float(cutmix_alpha, "cutmix_alpha", lo=0.0)
    prob = _check_prob(prob, "prob")
    switch_prob = _check_prob(switch_prob, "switch_prob")
    x_in, x, y = x, x.copy(), y_onehot.copy()
    if (mixup_alpha == 0 and cutmix_alpha == 0) or not rng.random() < prob:
        return x, y
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = bool(rng.random() < switch_prob)
    else:
        use_cutmix = cutmix_alpha > 0
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = float(rng.beta(alpha, alpha))
    B, C, H, W = x.shape
    partner = x_in[::-1]  # (B, C, H, W) reversed view of the input (x is the copy written into)
    if use_cutmix:
        ratio = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(H * ratio), int(W * ratio)
        cy, cx = int(rng.integers(0, H)), int(rng.integers(0, W))
        y0, y1 = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, H)
        x0, x1 = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, W)
        x[:, :, y0:y1, x0:x1] = partner[:, :, y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (H * W)  # the area actually kept
    else:
        x *= lam
        x += (1.0 - lam) * partner
    y *= lam
    y += (1.0 - lam) * y_onehot[::-1]
    return x, y


# ----------------------------------------------------------------------------- config + pipeline
@dataclass
class Augment:
    """Training augmentation settings (defaults: the released recipe for small RGB images).

    For digits set ``hflip=False`` (a mirrored digit is another symbol or none).
    """

    crop_padding: int = 4                 # zero padding of the random crop (0: no crop)
    hflip: bool = True                    # random horizontal flip with probability 0.5
    randaug_num_ops: int = 2              # RandAugment ops per image (0: off)
    randaug_magnitude: float = 9.0        # RandAugment magnitude M in [0, 10]
    randaug_magnitude_std: float = 0.5    # Gaussian noise on M per op
    randaug_prob: float = 0.5             # probability each chosen op is applied
    randaug_ops: tuple[str, ...] = field(default=RAND_AUGMENT_OPS)  # op set
    reprob: float = 0.25                  # random-erasing probability (0: off)
    remode: str = "pixel"                 # erased values: "const" (0), "rand", "pixel"
    erase_area: tuple[float, float] = (0.02, 1 / 3)     # erased fraction of the image
    erase_aspect: tuple[float, float] = (0.3, 1 / 0.3)  # erased box aspect ratio range
    mixup_alpha: float = 0.0              # Beta(a, a) of mixup (0: off)
    cutmix_alpha: float = 0.0             # Beta(a, a) of cutmix (0: off)
    mix_prob: float = 1.0                 # probability of mixing a batch when mixup/cutmix is on
    mix_switch_prob: float = 0.5          # probability of cutmix when both are on
    label_smoothing: float = 0.0          # eps of the soft targets

    def __post_init__(self):
        check_int(self.crop_padding, "crop_padding", lo=0)
        if not isinstance(self.hflip, bool):
            raise TypeError(f"hflip must be a bool, got {type(self.hflip).__name__}")
        check_int(self.randaug_num_ops, "randaug_num_ops", lo=0)
        check_float(self.randaug_magnitude, "randaug_magnitude", lo=0.0, hi=_MAX_MAGNITUDE)
        check_float(self.randaug_magnitude_std, "randaug_magnitude_std", lo=0.0)
        _check_prob(self.randaug_prob, "randaug_prob")
        if isinstance(self.randaug_ops, str) or not self.randaug_ops:
            raise ValueError(f"randaug_ops must be a non-empty sequence of op names, "
                             f"got {self.randaug_ops!r}")
        self.randaug_ops = tuple(self.randaug_ops)
        for op in self.randaug_ops:
            check_choice(op, RAND_AUGMENT_OPS, "randaug_ops entry")
        _check_prob(self.reprob, "reprob")
        check_choice(self.remode, _ERASE_MODES, "remode")
        self.erase_area = _check_range(self.erase_area, "erase_area", lo=0.0, hi=1.0)
        self.erase_aspect = _check_range(self.erase_aspect, "erase_aspect", lo=0.0)
        check_float(self.mixup_alpha, "mixup_alpha", lo=0.0)
        check_float(self.cutmix_alpha, "cutmix_alpha", lo=0.0)
        _check_prob(self.mix_prob, "mix_prob")
        _check_prob(self.mix_switch_prob, "mix_switch_prob")
        check_float(self.label_smoothing, "label_smoothing", lo=0.0, hi=1.0)

    @property
    def soft_targets(self) -> bool:
        """True when the transform returns (B, K) soft targets instead of integer labels."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0 or self.label_smoothing > 0

    @property
    def is_identity(self) -> bool:
        """True when the transform only normalises: no image op is on and the targets are the labels."""
        return (not self.crop_padding and not self.hflip and not self.randaug_num_ops and not self.reprob
                and not self.soft_targets)


class TrainTransform:
    """The training pipeline of an ``Augment`` config: ``(x_uint8, y, rng) -> (x_float, targets)``.

    ``targets`` is ``y`` (int64 (B,)) when ``cfg.soft_targets`` is False, else float32 (B, K) rows
    that already include label smoothing and mixup/cutmix: pass them to the loss with
    ``label_smoothing=0`` (smoothing must not be applied twice).
    """

    def __init__(self, cfg: Augment, mean, std, num_classes: int | None = None):
        if not isinstance(cfg, Augment):
            raise TypeError(f"cfg must be an Augment, got {type(cfg).__name__}")
        self.cfg = cfg
        self.normalize = Normalize(mean, std)
        if cfg.soft_targets:
            if num_classes is None:
                raise ValueError("num_classes is needed for soft targets (mixup, cutmix or "
                                 "label smoothing is on)")
            num_classes = check_int(num_classes, "num_classes", lo=1)
        self.num_classes = num_classes
        # Pixels brought in by rotate/shear/translate take the dataset mean (0 after normalising).
        self.fill = tuple(int(v) for v in np.clip(np.round(self.normalize.mean * 255), 0, 255))

    def __call__(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator):
        """Args: x (B, H, W, C) uint8; y (B,) integer labels; rng the generator.
        Returns: x (B, C, H, W) float32; targets (B,) int64 or (B, K) float32."""
        cfg = self.cfg
        x = _check_images(x)
        y = _check_labels(y, x.shape[0])
        rng = _check_rng(rng)
        if x.shape[3] != self.normalize.mean.size:
            raise ValueError(f"images have C = {x.shape[3]} channels, mean/std have "
                             f"{self.normalize.mean.size}")
        if cfg.crop_padding:
            x = random_crop(x, rng, cfg.crop_padding)
        if cfg.hflip:
            x = random_hflip(x, rng, 0.5)
        if cfg.randaug_num_ops:
            x = rand_augment(x, rng, cfg.randaug_num_ops, cfg.randaug_magnitude,
                             cfg.randaug_magnitude_std, cfg.randaug_prob, cfg.randaug_ops,
                             fill=self.fill)
        xf = self.normalize(x)  # (B, C, H, W) float32
        if cfg.reprob:
            xf = random_erasing(xf, rng, cfg.reprob, cfg.erase_area, cfg.erase_aspect, cfg.remode)
        if not cfg.soft_targets:
            return xf, y.astype(np.int64, copy=False)
        t = one_hot(y, self.num_classes, cfg.label_smoothing)  # (B, K)
        if cfg.mixup_alpha or cfg.cutmix_alpha:
            xf, t = mixup_cutmix(xf, t, rng, cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mix_prob,
                                 cfg.mix_switch_prob)
        return xf, t


def build_train_transform(cfg: Augment, mean, std, num_classes: int | None = None) -> TrainTransform:
    """The training transform of ``cfg`` normalising with ``mean``/``std`` (per channel, of x/255).

    ``num_classes`` is required when ``cfg.soft_targets`` (mixup, cutmix or label smoothing).
    Returns a callable ``(x_uint8 (B, H, W, C), y (B,), rng) -> (x (B, C, H, W) float32, targets)``.
    """
    return TrainTransform(cfg, mean, std, num_classes)
