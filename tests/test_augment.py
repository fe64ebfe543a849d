"""Tests of gsbnp.train.augment: normalisation, crop, flip, RandAugment, erasing, mixup/cutmix and the
training pipeline (determinism under a seed)."""

import numpy as np
import pytest

from gsbnp.train.augment import (RAND_AUGMENT_OPS, Augment, Normalize, build_train_transform,
                                 eval_transform, mixup_cutmix, one_hot, rand_augment, random_crop,
                                 random_erasing, random_hflip, to_model_input)

B, H, W = 6, 12, 10  # distinct H and W so transposition bugs show
MEAN3, STD3 = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def images(C=3, seed=0, b=B):
    return np.random.default_rng(seed).integers(0, 256, (b, H, W, C), dtype=np.uint8)


def rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------- normalise
def test_to_model_input_values_and_layout():
    x = images()
    out = to_model_input(x, MEAN3, STD3)
    assert out.shape == (B, 3, H, W) and out.dtype == np.float32 and out.flags.c_contiguous
    ref = (x.astype(np.float64) / 255 - np.array(MEAN3)) / np.array(STD3)  # (B, H, W, C)
    np.testing.assert_allclose(out, ref.transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(Normalize(MEAN3, STD3)(x), out)
    np.testing.assert_array_equal(eval_transform(x, MEAN3, STD3), out)
    g = to_model_input(images(C=1), (0.1307,), (0.3081,))
    assert g.shape == (B, 1, H, W)


@pytest.mark.parametrize("x, mean, std, exc, match", [
    (images().astype(np.float32), MEAN3, STD3, TypeError, "uint8"),
    (images()[0], MEAN3, STD3, ValueError, r"\(B, H, W, C\)"),
    (np.zeros((2, 4, 4, 2), np.uint8), MEAN3, STD3, ValueError, "C = 1 or 3"),
    (images(), (0.5,), (0.2,), ValueError, "images have C = 3"),
    (images(), MEAN3, (0.2, 0.0, 0.1), ValueError, "std must be > 0"),
    (images(), MEAN3, (0.2,), ValueError, "same length"),
    ([1, 2], MEAN3, STD3, TypeError, "numpy.ndarray"),
])
def test_normalise_bad_input(x, mean, std, exc, match):
    with pytest.raises(exc, match=match):
        to_model_input(x, mean, std)


# -------------------------------------------------------------------------------- crop and flip
def test_random_crop_windows():
    x = images()
    p = 3
    out = random_crop(x, rng(1), p)
    assert out.shape == x.shape and out.dtype == np.uint8
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    for b in range(B):  # every output is one window of its padded image
        hits = [(i, j) for i in range(2 * p + 1) for j in range(2 * p + 1)
                if np.array_equal(out[b], xp[b, i:i + H, j:j + W])]
        assert hits, f"image {b} is not a window of its padded input"
    np.testing.assert_array_equal(random_crop(x, rng(1), 0), x)


def test_random_crop_offsets_cover_range():
    # A single bright pixel at the centre reveals each image's offset.
    x = np.zeros((400, 9, 9, 1), np.uint8)
    x[:, 4, 4] = 255
    out = random_crop(x, rng(2), 2)
    b, r, c = np.nonzero(out[..., 0] == 255)
    assert np.array_equal(b, np.arange(400))  # the pixel is always inside the 9 x 9 window
    assert set(r) == set(c) == {2, 3, 4, 5, 6}  # every offset 0..2p is used (row = 4 + p - offset)


def test_random_hflip():
    x = images()
    out = random_hflip(x, rng(3), 0.5)
    flipped = np.array([np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x)])
    same = np.array([np.array_equal(o, i) for o, i in zip(out, x)])
    assert np.all(flipped | same) and flipped.any() and same.any()
    np.testing.assert_array_equal(random_hflip(x, rng(3), 0.0), x)
    np.testing.assert_array_equal(random_hflip(x, rng(3), 1.0), x[:, :, ::-1])


# ----------------------------------------------------------------------------------- RandAugment
@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("op", RAND_AUGMENT_OPS)
def test_each_op_runs_and_changes_the_image(op, C):
    # Low contrast, so autocontrast and equalize have work to do; >= 256 pixels, below which PIL's
    # equalize is the identity.
    x = np.random.default_rng(0).integers(60, 140, (3, 32, 30, C), dtype=np.uint8)
    out = rand_augment(x, rng(4), num_ops=1, magnitude=10.0, magnitude_std=0.0, prob=1.0, ops=(op,),
                       fill=0)
    assert out.shape == x.shape and out.dtype == np.uint8
    if op == "identity":
        np.testing.assert_array_equal(out, x)
    else:
        assert all(not np.array_equal(o, i) for o, i in zip(out, x)), op


@pytest.mark.parametrize("C", [1, 3])
def test_op_semantics(C):
    x = images(C=C, b=2)
    kw = dict(num_ops=1, magnitude=10.0, magnitude_std=0.0, prob=1.0)
    np.testing.assert_array_equal(rand_augment(x, rng(), ops=("solarize",), **kw), 255 - x)
    np.testing.assert_array_equal(rand_augment(x, rng(), ops=("posterize",), **kw), x & 0xF0)
    # Magnitude 0 leaves the parametrised ops unchanged.
    for op in ("solarize", "posterize", "contrast", "brightness", "sharpness", "translate_x"):
        out = rand_augment(x, rng(), num_ops=1, magnitude=0.0, magnitude_std=0.0, prob=1.0, ops=(op,))
        np.testing.assert_array_equal(out, x, err_msg=op)
    # Translating by 45% of the width brings in the fill value, per channel.
    fill = 7 if C == 1 else (7, 8, 9)
    out = rand_augment(np.full((4, H, W, C), 200, np.uint8), rng(5), ops=("translate_x",),
                       fill=fill, **kw)
    border = np.concatenate([out[:, :, 0], out[:, :, -1]], axis=1)  # (4, 2H, C)
    assert np.all(np.any(border == np.reshape(fill, (1, 1, C)), axis=1))


def test_rand_augment_off_switches():
    x = images()
    np.testing.assert_array_equal(rand_augment(x, rng(), num_ops=0), x)
    np.testing.assert_array_equal(rand_augment(x, rng(), prob=0.0), x)
    out = rand_augment(x, rng(6), num_ops=2, prob=1.0)
    assert out.shape == x.shape and not np.array_equal(out, x)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(num_ops=-1), ValueError, "num_ops"),
    (dict(magnitude=11.0), ValueError, "magnitude"),
    (dict(prob=1.5), ValueError, "prob"),
    (dict(ops=("rotate", "blur")), ValueError, "ops entry"),
    (dict(ops=()), ValueError, "at least one"),
    (dict(fill=300), ValueError, "fill"),
    (dict(fill=(1, 2)), ValueError, "fill"),
])
def test_rand_augment_bad_args(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        rand_augment(images(), rng(), **kwargs)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        rand_augment(images(), 0)


# -------------------------------------------------------------------------------- random erasing
def test_random_erasing_boxes():
    n, C = 64, 3
    x = np.ones((n, C, 16, 20), np.float32)
    out = random_erasing(x, rng(7), prob=1.0, mode="const")
    assert out.dtype == np.float32 and np.all(x == 1)  # input untouched
    erased = out == 0  # (n, C, 16, 20)
    assert np.array_equal(erased, np.broadcast_to(erased[:, :1], erased.shape))  # same box per channel
    areas = []
    for b in range(n):
        m = erased[b, 0]
        if not m.any():
            continue  # all 10 attempts may miss (rare); then the image is untouched
        r, c = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        assert m.sum() == r.size * c.size and np.all(m[r[0]:r[-1] + 1, c[0]:c[-1] + 1])  # rectangle
        areas.append(m.sum() / m.size)
    assert len(areas) > n * 0.9
    assert 0.01 < min(areas) and max(areas) < 0.4  # ~U(0.02, 1/3) after rounding the sides
    np.testing.assert_array_equal(random_erasing(x, rng(7), prob=0.0), x)


def test_random_erasing_modes():
    x = np.full((32, 3, 16, 16), 5.0)
    pix = random_erasing(x, rng(8), prob=1.0, mode="pixel")
    m = pix != 5.0
    assert m.any() and abs(pix[m].mean()) < 0.2 and 0.8 < pix[m].std() < 1.2  # N(0, 1) values
    rnd = random_erasing(x, rng(8), prob=1.0, mode="rand")
    for b in range(32):  # "rand": one value per channel inside the box
        for c in range(3):
            vals = rnd[b, c][rnd[b, c] != 5.0]
            assert vals.size == 0 or np.unique(vals).size == 1
    with pytest.raises(ValueError, match="mode"):
        random_erasing(x, rng(), mode="noise")
    with pytest.raises(ValueError, match="area"):
        random_erasing(x, rng(), area=(0.5, 0.1))
    with pytest.raises(TypeError, match="floating"):
        random_erasing(x.astype(np.uint8), rng())


# --------------------------------------------------------------------------- targets and mixing
def test_one_hot_smoothing():
    t = one_hot(np.array([2, 0]), 4, 0.2)
    np.testing.assert_allclose(t, [[0.05, 0.05, 0.85, 0.05], [0.85, 0.05, 0.05, 0.05]], rtol=1e-6)
    assert t.dtype == np.float32
    with pytest.raises(ValueError, match="labels must be in"):
        one_hot(np.array([4]), 4)
    with pytest.raises(TypeError, match="integer labels"):
        one_hot(np.array([1.0]), 4)


def _batch(seed=9):
    r = rng(seed)
    x = r.standard_normal((B, 3, H, W)).astype(np.float32)
    y = one_hot(r.integers(0, 5, B), 5)
    return x, y


def test_mixup():
    x, y = _batch()
    xm, ym = mixup_cutmix(x, y, rng(10), mixup_alpha=0.8, cutmix_alpha=0.0)
    # Recover lam from an image whose partner has a different label.
    b = next(i for i in range(B) if y[i].argmax() != y[B - 1 - i].argmax())
    lam = ym[b, y[b].argmax()]
    np.testing.assert_allclose(xm, lam * x + (1 - lam) * x[::-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ym, lam * y + (1 - lam) * y[::-1], rtol=1e-6)
    np.testing.assert_allclose(ym.sum(1), 1.0, rtol=1e-6)
    assert 0 < lam < 1


def test_cutmix():
    x, y = _batch()
    xm, ym = mixup_cutmix(x, y, rng(11), mixup_alpha=0.0, cutmix_alpha=1.0)
    from_self = xm == x
    from_partner = xm == x[::-1]
    assert np.all(from_self | from_partner)
    pasted = ~from_self[0, 0]  # (H, W) box taken from the partner (same box for the whole batch)
    assert np.all((~from_self).any(axis=1) == pasted[None])
    lam = 1 - pasted.mean()
    np.testing.assert_allclose(ym, lam * y + (1 - lam) * y[::-1], rtol=1e-6)


def test_mix_off_and_switch():
    x, y = _batch()
    for kw in (dict(mixup_alpha=0.0, cutmix_alpha=0.0), dict(prob=0.0)):
        xm, ym = mixup_cutmix(x, y, rng(), **kw)
        np.testing.assert_array_equal(xm, x)
        np.testing.assert_array_equal(ym, y)
        assert xm is not x
    # Both on: switch_prob 1 always cuts (every pixel from self or partner, no blends).
    xm, _ = mixup_cutmix(x, y, rng(12), mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=1.0)
    assert np.all((xm == x) | (xm == x[::-1]))
    with pytest.raises(ValueError, match="one row per image"):
        mixup_cutmix(x, y[:2], rng())
    with pytest.raises(ValueError, match="mixup_alpha"):
        mixup_cutmix(x, y, rng(), mixup_alpha=-1.0)


# ------------------------------------------------------------------------------------ pipeline
def test_pipeline_deterministic_and_seed_dependent():
    x, y = images(), np.arange(B) % 4
    cfg = Augment(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1)
    tf = build_train_transform(cfg, MEAN3, STD3, num_classes=4)
    a = tf(x, y, rng(42))
    b = tf(x, y, rng(42))
    c = tf(x, y, rng(43))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == (B, 3, H, W) and a[0].dtype == np.float32
    assert a[1].shape == (B, 4) and a[1].dtype == np.float32
    np.testing.assert_allclose(a[1].sum(1), 1.0, rtol=1e-6)
    assert a[1].min() > 0  # smoothing reached every class


def test_pipeline_hard_targets_and_grey_images():
    x, y = images(C=1), np.arange(B)
    cfg = Augment(hflip=False)
    assert not cfg.soft_targets
    tf = build_train_transform(cfg, (0.13,), (0.31,))
    xo, t = tf(x, y, rng(1))
    assert xo.shape == (B, 1, H, W) and t.dtype == np.int64
    np.testing.assert_array_equal(t, y)
    # With every augmentation off, the pipeline is eval_transform.
    off = Augment(crop_padding=0, hflip=False, randaug_num_ops=0, reprob=0.0)
    np.testing.assert_array_equal(build_train_transform(off, (0.13,), (0.31,))(x, y, rng())[0],
                                  eval_transform(x, (0.13,), (0.31,)))


def test_pipeline_label_smoothing_only():
    tf = build_train_transform(Augment(label_smoothing=0.1), MEAN3, STD3, num_classes=6)
    _, t = tf(images(), np.arange(B), rng())
    np.testing.assert_allclose(t, one_hot(np.arange(B), 6, 0.1))


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(crop_padding=-1), ValueError, "crop_padding"),
    (dict(hflip=1), TypeError, "hflip"),
    (dict(randaug_magnitude=12), ValueError, "randaug_magnitude"),
    (dict(randaug_ops=("rotate", "zoom")), ValueError, "randaug_ops"),
    (dict(randaug_ops="rotate"), ValueError, "randaug_ops"),
    (dict(reprob=2.0), ValueError, "reprob"),
    (dict(remode="gauss"), ValueError, "remode"),
    (dict(erase_area=(0.0, 0.3)), ValueError, "erase_area"),
    (dict(mixup_alpha=-0.1), ValueError, "mixup_alpha"),
    (dict(label_smoothing=1.1), ValueError, "label_smoothing"),
])
def test_augment_config_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Augment(**kwargs)


def test_pipeline_bad_input():
    with pytest.raises(ValueError, match="num_classes is needed"):
        build_train_transform(Augment(mixup_alpha=0.8), MEAN3, STD3)
    with pytest.raises(TypeError, match="cfg must be an Augment"):
        build_train_transform({"hflip": False}, MEAN3, STD3)
    tf = build_train_transform(Augment(), MEAN3, STD3)
    with pytest.raises(ValueError, match="channels"):
        tf(images(C=1), np.arange(B), rng())
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        tf(images(), np.arange(B + 1), rng())
    with pytest.raises(TypeError, match="Generator"):
        tf(images(), np.arange(B), 0)
    x = images()
    x0 = x.copy()
    tf(x, np.arange(B), rng())
    np.testing.assert_array_equal(x, x0)  # the caller's batch is never modified


def test_is_identity_means_the_transform_only_normalises():
    off = dict(crop_padding=0, hflip=False, randaug_num_ops=0, reprob=0.0)
    plain = Augment(**off)
    assert plain.is_identity and not Augment().is_identity
    for change in (dict(crop_padding=1), dict(hflip=True), dict(randaug_num_ops=1), dict(reprob=0.5),
                   dict(mixup_alpha=0.2), dict(cutmix_alpha=1.0), dict(label_smoothing=0.1)):
        assert not Augment(**{**off, **change}).is_identity, change
    x, y = images(C=1), np.arange(B)
    xo, t = build_train_transform(plain, (0.13,), (0.31,))(x, y, rng(1))
    np.testing.assert_array_equal(xo, Normalize((0.13,), (0.31,))(x))
    np.testing.assert_array_equal(t, y)
