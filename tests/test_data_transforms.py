"""images_to_batch: what a user holds (tensors, images, lists with missing cases) becomes a model's batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmfuse.data.transforms import create_transform, data_config_for, images_to_batch

CONFIG = data_config_for(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _image(value: int) -> np.ndarray:
    return np.full((20, 24, 3), value, dtype=np.uint8)


def test_a_list_with_missing_cases_gives_zeros_and_a_mask():
    batch, present = images_to_batch([_image(10), None, _image(200)], CONFIG, name="auxiliary")
    transform = create_transform(**CONFIG)
    assert batch.shape == (3, 3, 16, 16)
    assert present.tolist() == [True, False, True]
    torch.testing.assert_close(batch[0], transform(_image(10)))
    torch.testing.assert_close(batch[2], transform(_image(200)))
    assert not batch[1].any()


def test_complete_inputs_have_no_mask_and_tensors_pass_through():
    batch, present = images_to_batch(_image(10), CONFIG)
    assert batch.shape == (1, 3, 16, 16) and present is None
    tensor = torch.randn(3, 16, 16)
    same, present = images_to_batch(tensor, CONFIG)
    assert present is None and torch.equal(same, tensor.unsqueeze(0))
    assert images_to_batch(None, CONFIG) == (None, None)
    assert images_to_batch([None, None], CONFIG) == (None, None)


@pytest.mark.parametrize(
    ("images", "message"),
    [([], "primary is an empty list"), (torch.zeros(2, 3), r"primary must be \[B, 3, H, W\]")],
)
def test_bad_inputs_name_the_argument(images, message):
    with pytest.raises(ValueError, match=message):
        images_to_batch(images, CONFIG, name="primary")
