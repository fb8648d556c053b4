"""Property-based: Pillow-encoded images of every kind read bit-exact against jpeglib."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dctload
from conftest import assert_matches_oracle, encode, photo_like


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    width=st.integers(1, 70),
    height=st.integers(1, 70),
    quality=st.integers(1, 100),
    subsampling=st.sampled_from([0, 1, 2]),  # 4:4:4, 4:2:2, 4:2:0
    gray=st.booleans(),
    progressive=st.booleans(),
    restart=st.sampled_from([None, ("restart_marker_blocks", 1), ("restart_marker_blocks", 3),
                             ("restart_marker_rows", 1)]),
    seed=st.integers(0, 2**16),
)
def test_pillow_encoded_images_match_jpeglib(tmp_path, width, height, quality, subsampling, gray,
                                             progressive, restart, seed):
    pixels = photo_like(height, width, seed, channels=1 if gray else 3)
    options = {"quality": quality, "progressive": progressive}
    if not gray:
        options["subsampling"] = subsampling
    if restart:
        options[restart[0]] = restart[1]
    data = encode(pixels, **options)
    path = tmp_path / "image.jpg"
    path.write_bytes(data)
    image = dctload.read_coefficients(data)
    assert_matches_oracle(image, path)
    assert (image.width, image.height) == (width, height)
    assert image.progressive == progressive and image.warnings == ()
    assert (dctload.read_header(data)["restart_interval"] > 0) == bool(restart)
