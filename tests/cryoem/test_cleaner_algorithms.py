"""Pure algorithms of the cleaner against hand-worked answers."""

from __future__ import annotations

import numpy as np
import pytest

from scopeline.cryoem.cleaner.predict import blend_window, predict_probability, tile_layout
from scopeline.cryoem.cleaner.preprocess import downsample, downsample_factor, prepare, robust_normalise
from scopeline.cryoem.cleaner.regions import seeded_probability, stepped_probability
from scopeline.cryoem.cleaner.score import box_means, good_region_scores, inside_image, keep_decision
from scopeline.cryoem.cleaner.synth import WAVELENGTH_A, ctf_1d, simulate_micrograph


def test_box_means_exact_for_fractional_boxes():
    prob = np.zeros((10, 10))
    prob[:, 5:] = 1.0  # right half bad
    # box of side 4 centred on the boundary x=5: half of it bad
    assert box_means(prob, np.array([5.0]), np.array([5.0]), 4.0)[0] == pytest.approx(0.5)
    # centred at x=4.25: covers [2.25, 6.25): 1.25 of 4 columns bad
    assert box_means(prob, np.array([4.25]), np.array([5.0]), 4.0)[0] == pytest.approx(1.25 / 4)
    # clipped at the image edge: box [8, 12) -> inside part [8, 10) fully bad
    assert box_means(prob, np.array([10.0]), np.array([5.0]), 4.0)[0] == pytest.approx(1.0)
    # entirely outside: no score
    assert np.isnan(box_means(prob, np.array([20.0]), np.array([5.0]), 4.0)[0])


def test_box_means_matches_brute_force_on_random_mask():
    rng = np.random.default_rng(3)
    prob = rng.random((40, 50))
    x, y = rng.integers(4, 46, 20).astype(float) + 0.5, rng.integers(4, 36, 20).astype(float) + 0.5
    got = box_means(prob, x, y, 7.0)  # odd box on pixel centres: whole pixels
    want = [prob[int(b - 3.5) : int(b + 3.5), int(a - 3.5) : int(a + 3.5)].mean() for a, b in zip(x, y)]
    assert got == pytest.approx(want)


def test_good_region_score_uses_the_given_box_at_micrograph_scale():
    prob = np.zeros((16, 16))
    prob[8:, :] = 1.0  # bottom half bad at model scale; micrograph is 10x larger
    # pick at micrograph pixel (79.5, 79.5) -> continuous 80 -> model 8.0, on the boundary
    score = good_region_scores(prob, np.array([79.5]), np.array([79.5]), 40.0, 10.0, 10.0)
    assert score[0] == pytest.approx(0.5)
    # box 40 px = 4 model px; centre at model y = 5: box [3, 7) is clean
    assert good_region_scores(prob, np.array([100.0]), np.array([49.5]), 40.0, 10.0, 10.0)[0] == pytest.approx(1.0)


def test_keep_decision_threshold_and_keep_all():
    scores = np.array([0.2, 0.8, np.nan, 0.5])
    assert keep_decision(scores, 0.5).tolist() == [False, True, False, False]
    assert keep_decision(scores, -1).tolist() == [True, True, False, True]
    assert inside_image(np.array([-1, 0, 9.9, 10]), np.array([0, 0, 0, 0]), (5, 10)).tolist() == [False, True, True, False]


def test_robust_normalise_median_iqr():
    image = np.arange(101, dtype=np.float32)  # median 50, IQR 50
    out = robust_normalise(image[None, :])
    assert out[0, 50] == 0 and out[0, 100] == pytest.approx(1.0) and out[0, 0] == pytest.approx(-1.0)
    assert np.all(robust_normalise(np.ones((4, 4))) == 0)  # flat image: no division by zero


def test_downsample_area_average_and_factor():
    assert downsample_factor(200) == pytest.approx(12.5)
    assert downsample_factor(8) == 1.0  # never upsample
    image = np.kron(np.arange(16, dtype=np.float32).reshape(4, 4), np.ones((4, 4), np.float32))
    assert np.allclose(downsample(image, 4.0), np.arange(16).reshape(4, 4))
    small, factor = prepare(np.random.default_rng(0).random((4096, 4096), dtype=np.float32), 200)
    assert factor == 12.5 and small.shape == (328, 328) and small.dtype == np.float32


def test_tiles_cover_with_overlap():
    assert tile_layout(336, 512, 32) == (336, [0])  # a 4k micrograph at box 200: one pass
    for length in (104, 256, 264, 336, 520, 1000, 1648):
        tile, starts = tile_layout(length, 256, 32)
        assert tile <= 256 and tile % 8 == 0 and starts[0] == 0 and starts[-1] + tile == length
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s : s + tile] = True
        assert covered.all()
        assert all(b - a <= tile - 32 for a, b in zip(starts, starts[1:]))
        assert len(starts) == (1 if length <= 256 else int(np.ceil((length - 32) / (256 - 32))))  # the fewest
    assert tile_layout(520, 256, 32) == (200, [0, 160, 320])  # as short as three tiles allow
    w = blend_window(256, 32)
    assert w.min() > 0 and w.max() == 1.0


class _PixelwiseModel:
    """A model whose logit is the pixel value: any seam in the tiling would show."""

    def logits(self, batch):
        return batch.copy()


@pytest.mark.parametrize("shape", [(100, 90), (256, 256), (330, 331), (600, 420)])
@pytest.mark.parametrize("tile", [256, 512])
def test_tiled_prediction_has_no_seams(shape, tile):
    image = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    prob = predict_probability(image, _PixelwiseModel(), tile=tile, overlap=32)
    assert prob.shape == shape
    assert np.allclose(prob, 1 / (1 + np.exp(-image)), atol=1e-6)


def test_ctf_hand_values():
    k = np.array([0.0])
    assert ctf_1d(k, 10000.0)[0] == pytest.approx(0.07)
    # first zero of the pure-phase CTF without Cs is at pi*lambda*dz*k^2 = pi
    dz = 20000.0
    k0 = 1 / np.sqrt(WAVELENGTH_A * dz)
    assert ctf_1d(np.array([k0]), dz, amplitude_contrast=0.0)[0] == pytest.approx(
        np.sin(np.pi - 0.5 * np.pi * 2.7e7 * WAVELENGTH_A**3 * k0**4), abs=1e-9)


def test_simulation_is_reproducible_and_physical():
    a, b = simulate_micrograph(7, 128), simulate_micrograph(7, 128)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert a.image.shape == a.mask.shape == (128, 128)
    assert 0 <= a.mask.min() and a.mask.max() <= 1
    # over many seeds, contamination and carbon make bad regions darker than clean ice
    darker = []
    for seed in range(12):
        m = simulate_micrograph(seed, 128)
        if 0.1 < (m.mask > 0.5).mean() < 0.9:
            darker.append(np.median(m.image[m.mask > 0.5]) < np.median(m.image[m.mask == 0]))
    assert len(darker) >= 4 and np.mean(darker) >= 0.6


def test_a_simulation_recorded_at_another_pixel_size_is_the_same_micrograph():
    """sampling 2 is the simulation grid itself (Poisson counts per grid pixel), 0.5 the
    4 x 4 grid average: 2 x 2 block means of the finer recording give the coarser one
    exactly, the box scales with the sampling and the particles stay on the same spots."""
    coarse, model, fine = (simulate_micrograph(11, 96, s) for s in (0.5, 1.0, 2.0))
    assert fine.image.shape == (192, 192) and coarse.image.shape == (48, 48)

    def block2(a):
        return a.reshape(a.shape[0] // 2, 2, a.shape[1] // 2, 2).mean(axis=(1, 3))

    for finer, coarser in ((fine, model), (model, coarse)):
        np.testing.assert_allclose(block2(finer.image), coarser.image, rtol=1e-5)
        np.testing.assert_allclose(block2(finer.mask), coarser.mask, rtol=1e-6)
        assert finer.box_size == pytest.approx(2 * coarser.box_size)
        np.testing.assert_allclose(finer.particles, 2 * coarser.particles)
    assert fine.image.mean() == pytest.approx(model.image.mean(), rel=1e-5)
    with pytest.raises(ValueError, match="sampling"):
        simulate_micrograph(11, 96, 3.0)


def test_only_regions_holding_a_confident_pixel_stay_bad():
    prob = np.full((40, 60), 0.1, np.float32)
    prob[5:15, 5:25] = 0.6  # moderate everywhere, nothing sure: a false alarm
    prob[25:35, 5:25] = 0.6
    prob[30, 10] = 0.9  # the same region with one confident pixel (a film edge)
    prob[5:15, 40:50] = 0.6
    prob[15, 44] = 0.6  # touches the next region only diagonally: not connected
    prob[16:20, 45:50] = 0.95
    out = seeded_probability(prob, low=0.35, seed=0.8, seed_boxes=0)
    assert np.all(out[5:15, 5:25] == pytest.approx(0.175))  # capped at low / 2
    assert np.array_equal(out[25:35, 5:25], prob[25:35, 5:25])  # kept as it was
    assert np.all(out[5:15, 40:50] == pytest.approx(0.175))  # 4-connected: the diagonal neighbour does not seed it
    assert np.array_equal(out[16:20, 45:50], prob[16:20, 45:50])
    assert np.array_equal(out[prob < 0.35], prob[prob < 0.35])  # background untouched
    assert np.array_equal(seeded_probability(prob, low=0.35, seed=0.0), prob)  # the rule off
    # a pick in the false alarm is now kept at the default threshold, one in the seeded region removed
    scores = 1 - box_means(out, np.array([15.0, 15.0]), np.array([10.0, 30.0]), 8)
    assert keep_decision(scores, 0.65).tolist() == [True, False]


def test_a_seed_must_cover_a_particle_box():
    prob = np.full((64, 64), 0.1, np.float32)
    prob[4:60, 4:30] = 0.6
    prob[10:14, 10:14] = 0.9  # a few confident pixels: not a core
    prob[4:60, 34:60] = 0.6
    prob[20:40, 40:55] = 0.9  # 300 confident pixels: more than one 16 x 16 box
    out = seeded_probability(prob, low=0.35, seed=0.8, seed_boxes=1.0)
    assert out[4:60, 4:30].max() == pytest.approx(0.175)
    assert np.array_equal(out[4:60, 34:60], prob[4:60, 34:60])
    assert np.array_equal(seeded_probability(prob, 0.35, 0.8, seed_boxes=0), prob)  # one pixel seeds


def test_only_regions_with_a_step_in_the_image_stay_bad():
    rng = np.random.default_rng(0)
    size = 160
    image = rng.normal(0, 0.5, (size, size)).astype(np.float32)  # clean ice, pixel noise
    yy, xx = np.mgrid[0:size, 0:size]
    film = (xx > 30) & (xx < 70) & (yy > 30) & (yy < 130)  # carbon: one IQR darker, a sharp edge
    image[film] -= 1.0
    image += (0.8 * (xx - 120) / 40.0 * (xx > 90)).astype(np.float32) * -1  # thicker ice: smooth darkening
    prob = np.full(image.shape, 0.05, np.float32)
    prob[film] = 0.6  # the network: moderate on both, sure of neither
    ramp = (xx > 110) & (xx < 150) & (yy > 30) & (yy < 130)
    prob[ramp] = 0.6
    out = stepped_probability(prob, image, low=0.35, min_step=6.0)
    assert np.array_equal(out[film], prob[film])  # kept: the image steps across its edge
    assert np.all(out[ramp] == pytest.approx(0.175))  # damped: no step, only a gradient
    assert np.array_equal(stepped_probability(prob, image, 0.35, min_step=0.0), prob)  # the rule off
    tiny = np.full(image.shape, 0.05, np.float32)
    tiny[80:84, 100:104] = 0.9  # too small for a ring to be measured: kept
    assert stepped_probability(tiny, image, 0.35, 6.0)[81, 101] == pytest.approx(0.9)


def test_where_most_of_the_field_is_flagged_a_step_must_hold_along_a_stretch():
    rng = np.random.default_rng(0)
    ice = rng.normal(0, 0.5, (400, 400)).astype(np.float32)
    large = np.full(ice.shape, 0.05, np.float32)
    large[20:380, 20:380] = 0.6  # the network flags 81 % of the field
    small = np.full(ice.shape, 0.05, np.float32)
    small[170:230, 320:380] = 0.6  # 2 %, a region with the same right edge

    def kept(prob, image, **kwargs):
        return stepped_probability(prob, image, 0.35, 6.0, **kwargs)[200, 350] > 0.5

    # the faintest dark speck just outside the right edge that the one-pixel rule takes for a step
    for amplitude in np.arange(1.4, 3.0, 0.02):
        speck = ice.copy()
        speck[198:202, 380:384] -= amplitude
        if kept(large, speck, wide=1.0):  # the one-window rule
            break
    assert 1.4 < amplitude < 2.9
    assert not kept(large, speck)  # damped: one marginal window along a long boundary is chance
    assert kept(small, speck)  # on a mostly clean field the same window is a step
    edge = ice.copy()
    edge[150:250, 380:384] -= 0.5  # a faint step along 100 px of the boundary: an edge
    assert kept(large, edge)


def test_a_false_alarm_bridged_to_a_real_defect_is_judged_on_its_own():
    rng = np.random.default_rng(0)
    image = rng.normal(0, 0.5, (160, 200)).astype(np.float32)
    blob = np.zeros(image.shape, bool)
    blob[60:100, 20:60] = True
    image[blob] -= 3.0  # a contamination: dark, sharp edge
    patch = np.zeros(image.shape, bool)
    patch[40:120, 110:180] = True  # a false alarm on plain ice
    prob = np.full(image.shape, 0.05, np.float32)
    prob[blob], prob[patch] = 0.9, 0.6
    prob[75:85, 60:110] = 0.4  # a bridge of moderate probability joins them at 0.35
    joined = stepped_probability(prob, image, 0.35, 6.0, levels=())
    assert np.array_equal(joined[patch], prob[patch])  # one region with the blob's step: kept whole
    out = stepped_probability(prob, image, 0.35, 6.0, levels=(0.5,))  # tested again at 0.5
    assert np.all(out[patch] == pytest.approx(0.175)) and np.array_equal(out[blob], prob[blob])


def test_where_most_of_the_field_is_flagged_only_what_is_darker_than_the_ice_stays_bad():
    """A false alarm over half the field joined to a dark contamination: the step is the
    contamination's, so only the part darker than the ice around that step (and its rim)
    stays bad (session 9). A film darker than the ice behind an edge over most of the
    field stays whole, and so does a region whose stepped side is brighter (the network
    may have flagged a hole with its film: which side is the defect is not known)."""
    rng = np.random.default_rng(1)
    ice = rng.normal(0, 0.5, (240, 240)).astype(np.float32)
    blob = np.zeros(ice.shape, bool)
    blob[100:140, 160:200] = True
    alarm = np.zeros(ice.shape, bool)
    alarm[20:220, 20:170] = True  # 52 % of the field, on plain ice
    prob = np.full(ice.shape, 0.05, np.float32)
    prob[alarm], prob[blob] = 0.6, 0.9

    dark = ice.copy()
    dark[blob] -= 3.0
    out = stepped_probability(prob, dark, 0.35, 6.0)
    assert np.array_equal(out[110:130, 175:195], prob[110:130, 175:195])  # the contamination stays
    assert np.all(out[30:210, 30:130] == pytest.approx(0.175))  # the false alarm is damped, a box away from it
    assert np.array_equal(stepped_probability(prob, dark, 0.35, 6.0, dark_part=False), prob)  # session 8: kept whole
    thick = dark.copy()
    thick[40:80, 40:80] -= 4.0  # a thick contamination inside the false alarm, its edge hidden by it
    enclosed = stepped_probability(prob, thick, 0.35, 6.0)
    assert np.array_equal(enclosed[45:75, 45:75], prob[45:75, 45:75])  # as dark as the stepped side: stays
    assert np.all(enclosed[150:210, 30:130] == pytest.approx(0.175))

    bright = ice.copy()
    bright[blob] += 3.0  # a bright crystal: which side is the defect is not told by the level
    assert np.array_equal(stepped_probability(prob, bright, 0.35, 6.0), prob)

    film = ice.copy()
    yy, xx = np.mgrid[0:240, 0:240]
    carbon = xx < 170 + 0.2 * (yy - 120)  # a hole edge crossing the field, film on the left (~70 %)
    film[carbon] -= 1.0
    flagged = np.where(carbon, np.float32(0.6), np.float32(0.05))
    assert np.array_equal(stepped_probability(flagged, film, 0.35, 6.0), flagged)


def test_a_padded_border_is_found_and_is_no_step():
    from scopeline.cryoem.cleaner.regions import padded_border

    rng = np.random.default_rng(2)
    ice = rng.normal(0, 0.5, (200, 240)).astype(np.float32)
    assert padded_border(ice) == (0, 0, 0, 0)
    padded = np.pad(ice[10:-4, 7:-12], ((10, 4), (7, 12)), mode="edge")  # streaks: the edge repeated
    padded[:, -1] = rng.normal(0, 0.5, 200)  # one unpadded column at the very edge (JPEG) does not hide it
    assert padded_border(padded) == (10, 4, 7, 12)

    # a false alarm next to a streaked border: the streaks step against the ice, the region is damped
    streaked = np.pad(ice[:, 12:], ((0, 0), (12, 0)), mode="edge")
    streaked[:, :12] += 2.0 * np.sign(rng.normal(size=(200, 1))).astype(np.float32)  # bright and dark streaks
    prob = np.full(streaked.shape, 0.05, np.float32)
    prob[40:160, 12:80] = 0.6  # on the ice, touching the padding
    assert np.all(stepped_probability(prob, streaked, 0.35, 6.0)[40:160, 12:80] == pytest.approx(0.175))
