"""Bad registration inputs give one clear InputError each, before any work starts."""

import numpy as np
import pytest
import SimpleITK as sitk

from edge_runtime.errors import InputError
from models.preprocess.registration import check_pair


def _vol(size=(32, 32, 16), spacing=(2.0, 2.0, 4.0), origin=(0.0, 0.0, 0.0)):
    img = sitk.GetImageFromArray(np.random.default_rng(0).random(size[::-1]).astype(np.float32))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


def test_good_pair_passes():
    check_pair(_vol(), _vol(origin=(3.0, 0.0, 0.0)))


@pytest.mark.parametrize(
    ("moving", "message"),
    [
        (_vol(origin=(500.0, 0.0, 0.0)), "do not overlap"),
        (_vol(size=(8, 8, 16), spacing=(20.0, 20.0, 4.0)), "spacings differ"),
        (sitk.Image([32, 32], sitk.sitkFloat32), "2D image"),
        (_vol(size=(32, 32, 1)), "2D image"),
    ],
)
def test_bad_pairs_are_refused(moving, message):
    with pytest.raises(InputError, match=message):
        check_pair(_vol(), moving)


def test_empty_mask_is_refused():
    fixed = _vol()
    mask = sitk.Image(fixed.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(fixed)
    with pytest.raises(InputError, match="empty"):
        check_pair(fixed, _vol(), fixed_mask=mask)
