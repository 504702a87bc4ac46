"""Augmentations: semantics, bit-identical results on every backend, no side effects, errors."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn import augment as A

X = np.random.default_rng(0).random((6, 2, 9, 9)).astype(np.float32)  # square: rot90 applies

TRANSFORMS = {
    "flip": lambda: A.RandomFlip(horizontal=True, vertical=True),
    "crop-zero": lambda: A.RandomCrop(9, padding=2),
    "crop-reflect": lambda: A.RandomCrop((7, 8), padding=(3, 2), padding_mode="reflect"),
    "translate": lambda: A.RandomTranslate(3),
    "rotation": lambda: A.RandomRotation(180),
    "noise": lambda: A.GaussianNoise(0.2, clip=(0.0, 1.0)),
    "cutout": lambda: A.Cutout(4),
    "color": lambda: A.ColorJitter(0.4, 0.4),
    "compose": lambda: A.Compose([A.RandomCrop(9, 1), A.RandomRotation(20), A.ColorJitter(0.2, 0.2)]),
}


def _host(b, a):
    return b.to_numpy(a)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_same_seed_bit_identical_on_every_backend(name, backend):
    t = TRANSFORMS[name]()
    ref = t(nn.get_backend("numpy").asarray(X), rng=nn.Generator(11))
    out = t(backend.asarray(X), rng=nn.Generator(11))
    np.testing.assert_array_equal(_host(backend, out), ref, err_msg=f"{name} on {backend.label}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", TRANSFORMS)
def test_keeps_dtype_device_and_input(name, dtype, backend):
    x = backend.asarray(X, dtype=dtype)
    before = _host(backend, x)
    y = TRANSFORMS[name]()(x, rng=3)
    assert backend.owns(y), f"{name}: output left {backend.label}"
    assert y.dtype == x.dtype, f"{name}: dtype {y.dtype} != {x.dtype}"
    np.testing.assert_array_equal(_host(backend, x), before, err_msg=f"{name} wrote into its input")


def test_mixup_bit_identical_and_side_effect_free(backend):
    y = np.arange(6) % 4
    ref_x, ref_y = A.MixUp(0.5)(nn.get_backend("numpy").asarray(X), nn.get_backend("numpy").asarray(y), 4, rng=5)
    x = backend.asarray(X)
    xm, ym = A.MixUp(0.5)(x, backend.asarray(y), 4, rng=5)
    assert backend.owns(xm) and backend.owns(ym) and xm.dtype == x.dtype and ym.dtype == x.dtype
    np.testing.assert_array_equal(_host(backend, xm), ref_x)
    np.testing.assert_array_equal(_host(backend, ym), ref_y)
    np.testing.assert_array_equal(_host(backend, x), X)


def test_flip_twice_is_identity_and_p1_is_xp_flip(backend):
    xp = backend.xp
    x = backend.asarray(X)
    both = A.RandomFlip(horizontal=True, vertical=True, p=1.0)
    np.testing.assert_array_equal(_host(backend, both(both(x, rng=0), rng=1)), X)
    h = A.RandomFlip(p=1.0)(x, rng=0)
    np.testing.assert_array_equal(_host(backend, h), _host(backend, xp.flip(x, axis=3)))
    # p=0.5, same seed twice: the same images flip, so applying it twice restores the batch
    half = A.RandomFlip(horizontal=True, vertical=True)
    np.testing.assert_array_equal(_host(backend, half(half(x, rng=4), rng=4)), X)


def test_rotation_by_90_degrees_is_transpose_then_flip(backend):
    xp = backend.xp
    x = backend.asarray(X)
    y = A.RandomRotation((90.0, 90.0))(x, rng=0)
    expected = xp.flip(xp.permute_dims(x, (0, 1, 3, 2)), axis=2)  # counter-clockwise rot90
    np.testing.assert_allclose(_host(backend, y), _host(backend, expected), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(_host(backend, A.RandomRotation((0.0, 0.0))(x, rng=0)), X)


def test_rotation_matches_a_per_pixel_reference():
    x = X[:2, :1]
    angle = 33.0
    y = nn.to_numpy(A.RandomRotation((angle, angle))(nn.get_backend("numpy").asarray(x), rng=0))
    t = np.deg2rad(angle)
    h, w = x.shape[2:]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    ref = np.zeros_like(x, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            u, v = j - cx, cy - i
            sj, si = cx + np.cos(t) * u + np.sin(t) * v, cy + np.sin(t) * u - np.cos(t) * v
            i0, j0 = int(np.floor(si)), int(np.floor(sj))
            for ii, wi in ((i0, 1 - (si - i0)), (i0 + 1, si - i0)):
                for jj, wj in ((j0, 1 - (sj - j0)), (j0 + 1, sj - j0)):
                    if 0 <= ii < h and 0 <= jj < w:
                        ref[:, :, i, j] += wi * wj * x[:, :, ii, jj]
    np.testing.assert_allclose(y, ref, atol=2e-6)


def _windows(padded, size):
    ph, pw = padded.shape[-2] - size[0] + 1, padded.shape[-1] - size[1] + 1
    return [padded[..., i:i + size[0], j:j + size[1]] for i in range(ph) for j in range(pw)]


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_crop_is_a_window_of_the_padded_image(mode, backend):
    size, pad = (7, 8), (3, 2)
    y = _host(backend, A.RandomCrop(size, padding=pad, padding_mode=mode)(backend.asarray(X), rng=2))
    padded = np.pad(X, ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2), mode=mode)
    offsets = set()
    for n in range(len(X)):
        hits = [k for k, win in enumerate(_windows(padded[n], size)) if np.array_equal(win, y[n])]
        assert hits, f"sample {n}: the crop is no window of the {mode}-padded image"
        offsets.add(hits[0])
    assert len(offsets) > 1, "every sample got the same crop position"


def test_zero_padded_crop_keeps_the_content_it_covers():
    x = X + 1.0  # no zeros in the image: a zero can only come from the padding
    y = nn.to_numpy(A.RandomCrop(9, padding=4)(nn.get_backend("numpy").asarray(x), rng=8))
    for n in range(len(x)):
        inside = y[n] != 0
        rows, cols = np.flatnonzero(inside[0].any(1)), np.flatnonzero(inside[0].any(0))
        block = y[n][:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        assert np.all(block != 0), "padding zeros inside the covered block"
        assert any(np.array_equal(block, w) for w in _windows(x[n], block.shape[1:])), \
            "covered content is not an unaltered part of the image"


def test_translate_shifts_with_zero_fill():
    y = nn.to_numpy(A.RandomTranslate(2)(nn.get_backend("numpy").asarray(X), rng=1))
    padded = np.pad(X, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for n in range(len(X)):
        assert any(np.array_equal(w, y[n]) for w in _windows(padded[n], (9, 9)))


def test_cutout_blanks_at_most_one_square():
    x = X + 1.0
    y = nn.to_numpy(A.Cutout(4)(nn.get_backend("numpy").asarray(x), rng=0))
    zero = y == 0
    assert np.all((y == x) | zero)
    per_image = zero[:, 0].reshape(len(x), -1).sum(1)
    assert np.all(per_image <= 16) and np.all(per_image >= 4)  # a centre inside keeps >= 2x2 of the square
    assert np.array_equal(zero[:, 0], zero[:, 1]), "channels get the same hole"


def test_noise_and_color_statistics():
    b = nn.get_backend("numpy")
    x = b.asarray(np.full((64, 1, 16, 16), 0.5, dtype=np.float32))
    d = nn.to_numpy(A.GaussianNoise(0.1)(x, rng=0)) - 0.5
    assert abs(d.mean()) < 0.005 and abs(d.std() - 0.1) < 0.005
    bright = nn.to_numpy(A.ColorJitter(brightness=0.5, clip=None)(b.asarray(X), rng=0)) / X
    per_image = bright.reshape(len(X), -1)
    np.testing.assert_allclose(per_image, per_image[:, :1] * np.ones_like(per_image), rtol=1e-5)
    assert np.all((per_image >= 0.5) & (per_image <= 1.5)) and per_image[:, 0].std() > 0.05
    contrast = nn.to_numpy(A.ColorJitter(contrast=0.5, clip=None)(b.asarray(X), rng=0))
    np.testing.assert_allclose(contrast.mean(axis=(1, 2, 3)), X.mean(axis=(1, 2, 3)), atol=1e-5)


def test_mixup_targets_and_loss_with_soft_targets(backend):
    labels = np.array([0, 1, 2, 3, 0, 1])
    xm, ym = A.MixUp(1.0)(backend.asarray(X), backend.asarray(labels), 4, rng=2)
    xm, ym = _host(backend, xm), _host(backend, ym)
    np.testing.assert_allclose(ym.sum(1), 1.0, rtol=1e-6)
    lam = ym[np.arange(6), labels]  # weight of each sample's own label (exact unless paired with its own class)
    for n in range(6):
        # x'_n = lam x_n + (1 - lam) x_m for the partner m whose label carries the rest
        candidates = [m for m in range(6) if np.allclose(xm[n], lam[n] * X[n] + (1 - lam[n]) * X[m], atol=1e-6)]
        assert candidates or ym[n].max() == 1.0, f"sample {n} is no convex pair mix"
    logits = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    loss, grad = nn.losses.softmax_cross_entropy(backend.asarray(logits), backend.asarray(ym))
    torch = pytest.importorskip("torch")
    tl = torch.from_numpy(logits).requires_grad_(True)
    ref = torch.nn.functional.cross_entropy(tl, torch.from_numpy(ym))
    ref.backward()
    np.testing.assert_allclose(float(_host(backend, loss)), ref.item(), rtol=1e-5)
    np.testing.assert_allclose(_host(backend, grad), tl.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_compose_draws_in_sequence_from_one_generator():
    b = nn.get_backend("numpy")
    x = b.asarray(X)
    a, c = A.RandomCrop(9, 2), A.RandomRotation(30)
    g = nn.Generator(9)
    np.testing.assert_array_equal(A.Compose([a, c])(x, rng=9), c(a(x, rng=g), rng=g))


def test_default_generator_is_used_and_seedable():
    x = nn.get_backend("numpy").asarray(X)
    nn.manual_seed(4)
    first = A.RandomRotation(30)(x)
    nn.manual_seed(4)
    np.testing.assert_array_equal(A.RandomRotation(30)(x), first)


def test_errors():
    b = nn.get_backend("numpy")
    x = b.asarray(X)
    with pytest.raises(ValueError, match=r"RandomCrop: crop size \(12, 12\) is larger than the padded image \(11, 11\)"):
        A.RandomCrop(12, padding=1)(x)
    with pytest.raises(ValueError, match=r"RandomCrop: reflect padding \(9, 9\) must be smaller than the image"):
        A.RandomCrop(9, padding=9, padding_mode="reflect")(x)
    with pytest.raises(ValueError, match=r"RandomCrop: `padding_mode` must be 'constant' or 'reflect', got 'wrap'"):
        A.RandomCrop(9, padding_mode="wrap")
    with pytest.raises(ValueError, match=r"RandomCrop: `size` must be an int >= 1 or a pair of them, got 0"):
        A.RandomCrop(0)
    with pytest.raises(ValueError, match=r"RandomFlip: expected a batch of images of shape \(N, C, H, W\), got shape \(2, 9, 9\)"):
        A.RandomFlip()(b.asarray(X[0]))
    with pytest.raises(TypeError, match="RandomRotation: expected a floating batch of images, got dtype int64"):
        A.RandomRotation(10)(b.asarray(np.ones((2, 1, 4, 4), dtype=np.int64)))
    with pytest.raises(TypeError, match="Cutout: expected an array of images, got list"):
        A.Cutout(2)([[1.0]])
    with pytest.raises(ValueError, match=r"RandomFlip: enable `horizontal` or `vertical`"):
        A.RandomFlip(horizontal=False)
    with pytest.raises(ValueError, match=r"RandomFlip: `p` must be in \[0, 1\], got 1.5"):
        A.RandomFlip(p=1.5)
    with pytest.raises(ValueError, match=r"RandomTranslate: `max_shift` must be an int >= 0 \(pixels\)"):
        A.RandomTranslate(1.5)
    with pytest.raises(ValueError, match="RandomRotation: `degrees` range must have low <= high"):
        A.RandomRotation((10, -10))
    with pytest.raises(ValueError, match="GaussianNoise: `std` must be >= 0, got -1"):
        A.GaussianNoise(-1)
    with pytest.raises(ValueError, match="Cutout: `size` must be a positive int, got 0"):
        A.Cutout(0)
    with pytest.raises(ValueError, match="ColorJitter: `contrast` must be >= 0, got -0.1"):
        A.ColorJitter(contrast=-0.1)
    with pytest.raises(ValueError, match="MixUp: `alpha` must be > 0, got 0"):
        A.MixUp(0)
    with pytest.raises(ValueError, match=r"MixUp: `y` must be \(6,\) integer class ids, got shape \(5,\)"):
        A.MixUp()(x, b.asarray(np.zeros(5, dtype=np.int64)), 3)
    with pytest.raises(TypeError, match="Compose: transform 1 is a int, expected a callable"):
        A.Compose([A.Cutout(2), 3])
    with pytest.raises(TypeError, match="get_rng: `rng` must be None, an int seed or an anyxp_nn.random.Generator"):
        A.Cutout(2)(x, rng="seed")
