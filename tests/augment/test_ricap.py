"""RICAP: the boundary from Beta(beta, beta), crops at their own scale, labels by exact area."""

import numpy as np
import pytest

from augment import MIXERS, RICAP


def _sources(sizes, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k, (h, w) in enumerate(sizes):
        out.append(
            {
                "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                "mask": rng.integers(0, 3, (h, w)).astype(np.int64),
                "label_vector": np.eye(4)[k],
            }
        )
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("beta", [0.3, 1.0])
def test_the_split_is_a_beta_draw_and_each_cell_a_crop_at_its_own_scale(seed, beta):
    sources = _sources([(40, 50), (60, 70), (45, 55), (50, 64)], seed)
    mixer = RICAP(beta=beta)
    placements = mixer.layout([s["image"].shape[:2] for s in sources], np.random.default_rng(seed))
    clone = np.random.default_rng(seed)
    order = clone.permutation(4)
    by, bx = clone.beta(beta, beta), clone.beta(beta, beta)
    split_y, split_x = int(np.round(by * 40)), int(np.round(bx * 50))
    assert [p.cell for p in placements] == [
        (0, 0, split_y, split_x),
        (0, split_x, split_y, 50),
        (split_y, 0, 40, split_x),
        (split_y, split_x, 40, 50),
    ]
    assert [p.source for p in placements] == order.tolist()
    out = mixer.apply(sources, placements)
    area = np.zeros(4)
    for p in placements:  # naive reference: every output pixel is its source's pixel, shifted, never resized
        (vy0, vx0, vy1, vx1), (cy0, cx0, cy1, cx1) = p.visible, p.crop
        assert (vy1 - vy0, vx1 - vx0) == (cy1 - cy0, cx1 - cx0)
        for i in range(vy0, vy1):
            for j in range(vx0, vx1):
                src = sources[p.source]
                assert (out["image"][i, j] == src["image"][cy0 + i - vy0, cx0 + j - vx0]).all()
                assert out["mask"][i, j] == src["mask"][cy0 + i - vy0, cx0 + j - vx0]
        area[p.source] += (vy1 - vy0) * (vx1 - vx0)
    np.testing.assert_allclose(out["label_vector"], area / (40 * 50), rtol=0, atol=1e-7)  # float32 vectors


def test_small_beta_puts_the_boundary_near_an_edge_as_the_paper_intends():
    mixer, rng = RICAP(beta=0.3), np.random.default_rng(1)
    shapes = [(64, 64)] * 4
    cuts = np.array([mixer.layout(shapes, rng)[0].cell[2] for _ in range(400)]) / 64
    assert abs(cuts.mean() - 0.5) < 0.06 and np.mean((cuts < 0.2) | (cuts > 0.8)) > 0.45  # Beta(0.3, 0.3): U-shaped


def test_bad_beta_and_registration():
    for beta in (0, -1.0, float("nan"), "0.3", True):
        with pytest.raises(ValueError, match="RICAP beta must be a number > 0"):
            RICAP(beta=beta)
    assert MIXERS["RICAP"] is RICAP and RICAP().num_sources == 4
