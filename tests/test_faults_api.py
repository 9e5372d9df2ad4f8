"""The Python API reads only what is unambiguous (issue #26, items 4 and 12): uint8, uint16
(scaled by 65535) and float images in [0, 1]; every other dtype or range, a wrong shape, an empty
image, a bad argument is refused with a message saying what was received and what is accepted."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import REPO
from uir import ImageRestorer
from uir.common.errors import ImageInputError, OptionsError

DEMO = REPO / "options" / "demo.yml"
ACCEPTED = "accepted: uint8 (0..255), uint16 (0..65535), or float16/bfloat16/float32/float64 with values in [0, 1]"


@pytest.fixture(scope="module")
def demo():
    return ImageRestorer.from_file(DEMO, [("device", "cpu"), ("batch_size", 1)])


@pytest.fixture(scope="module")
def u8():
    return np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)


def restore(demo, images, **kwargs):
    return demo(images, sampler="mrsampler", nfe=2, **kwargs)


def test_uint16_and_float_images_are_scaled_and_given_back_in_their_own_dtype(demo, u8):
    as_u8 = restore(demo, u8)
    as_u16 = restore(demo, u8.astype(np.uint16) * 257)  # the same image at 16 bits
    assert as_u16.dtype == np.uint16 and as_u16.shape == u8.shape
    assert np.abs(as_u16 / 65535.0 - as_u8 / 255.0).max() <= 0.5 / 255 + 0.5 / 65535  # both quantise one result
    as_f64 = restore(demo, u8 / 255.0)
    assert as_f64.dtype == np.float64 and np.abs(np.round(as_f64 * 255) - as_u8).max() <= 1
    tensor = torch.from_numpy(u8).permute(2, 0, 1)
    mixed = restore(demo, [u8, u8 / 255.0, tensor, tensor.to(torch.uint16) * 257, tensor.half() / 255],
                    seeds=[0] * 5)
    assert [(type(m).__name__, str(m.dtype)) for m in mixed] == [
        ("ndarray", "uint8"), ("ndarray", "float64"), ("Tensor", "torch.uint8"), ("Tensor", "torch.uint16"),
        ("Tensor", "torch.float16")]
    assert np.array_equal(mixed[0], as_u8) and np.array_equal(mixed[2].permute(1, 2, 0).numpy(), as_u8)
    batch = restore(demo, np.stack([u8, u8]).astype(np.uint16) * 257, seeds=[0, 0])
    assert batch.dtype == np.uint16 and batch.shape == (2, 16, 24, 3) and np.array_equal(batch[0], as_u16)


@pytest.mark.parametrize("case, message", [
    ("int32", r"image: got dtype int32 \(values \d+\.\.\d+\)"),
    ("int64 tensor", r"image: got dtype int64"),
    ("bool", r"image: got dtype bool \(values 0\.\.1\)"),
    ("float 0..255", r"image: got a float32 image \(values \d+\.\.\d+\); a float image must lie in \[0, 1\]"),
    ("negative", r"image: got a float64 image \(values -0\.5\.\.0\.\d+\)"),
    ("nan", r"image: got a float32 image \(values .*1 NaN/inf\)"),
    ("complex", r"image: got dtype complex64"),
])
def test_ambiguous_images_are_refused_saying_what_came_and_what_is_accepted(demo, u8, case, message):
    image = {"int32": u8.astype(np.int32), "int64 tensor": torch.from_numpy(u8).permute(2, 0, 1).long(),
             "bool": u8 > 127, "float 0..255": u8.astype(np.float32), "negative": u8 / 255.0 - 0.5,
             "nan": np.where(np.arange(u8.size).reshape(u8.shape) == 5, np.nan, u8 / 255.0).astype(np.float32),
             "complex": u8.astype(np.complex64)}[case]
    with pytest.raises(ImageInputError, match=message) as caught:
        restore(demo, image)
    assert ACCEPTED in str(caught.value)
    with pytest.raises(ImageInputError, match=r"images\[1\]: got"):  # in a list, the item is named
        restore(demo, [u8, image])


@pytest.mark.parametrize("image, message", [
    (np.zeros((128, 128), np.uint8), r"image: expected a numpy image \[H, W, 3\] .*got shape \(128, 128\) "
                                     r"\(a grayscale image\?"),
    (np.zeros((8, 8, 4), np.uint8), r"got shape \(8, 8, 4\) \(RGBA\?"),
    (torch.zeros(8, 8, 3), r"image: expected a tensor image \[3, H, W\] .*got shape \(8, 8, 3\)"),
    (np.zeros((0, 16, 3), np.uint8), r"image: the image is empty \(shape \(0, 16, 3\)\)"),
    (np.zeros((0, 8, 8, 3), np.uint8), r"images: the batch is empty"),
    ([], r"images: no images given"),
    ([np.zeros((1, 8, 8, 3), np.uint8)], r"images\[0\]: expected one image \(\[H, W, 3\]\) per list item"),
])
def test_wrong_shapes_and_empty_images_are_named(demo, image, message):
    with pytest.raises(ImageInputError, match=message):
        restore(demo, image)


@pytest.mark.parametrize("kwargs, message", [
    ({"nfe": 0}, r"nfe: must be >= 1, got 0"),
    ({"sampler": ""}, r"sampler: '' is not valid; valid values: sde, posterior, heun, mrsampler"),
    ({"nfe": True}, r"nfe: expected an integer, got True"),
    ({"seeds": [2**70]}, r"seeds\[0\]: must be <= 9223372036854775807, got 1180591620717411303424"),
    ({"seeds": [1.7]}, r"seeds\[0\]: expected an integer, got 1.7"),
    ({"seeds": [-1]}, r"seeds\[0\]: must be >= 0"),
    ({"seeds": 3}, r"seeds: expected a list of integers, one per image, got 3"),
    ({"num_sample_steps": 3}, r"num_sample_steps: give the number of steps as nfe="),
])
def test_bad_arguments_are_refused_not_replaced_by_defaults(demo, u8, kwargs, message):
    with pytest.raises(OptionsError, match=message):
        demo(u8, **{"sampler": "mrsampler", "nfe": 2, **kwargs})


def test_numpy_integer_seeds_and_nfe_are_integers(demo, u8):
    assert np.array_equal(demo(u8, sampler="mrsampler", nfe=np.int64(2), seeds=[np.int64(4)]),
                          demo(u8, sampler="mrsampler", nfe=2, seeds=[4]))


@pytest.mark.parametrize("runs, message", [
    ({"sampler": "mrsampler", "nfe": 2}, r"runs: expected a list of \{sampler, nfe, label, set\} mappings, got a "
                                         r"dict \(one point is a list of one"),
    ("mrsampler", r"runs: expected a list .* got a str"),
    (["mrsampler"], r"runs\[0\]: expected a mapping \{sampler, nfe, label, set\}, got 'mrsampler'"),
    ([{"sampler": "mrsampler", "nfe": 0}], r"sweep\.runs\[0\]\.nfe: must be >= 1, got 0"),
])
def test_sweep_runs_that_are_not_a_list_of_mappings_are_named(demo, u8, runs, message):
    with pytest.raises(OptionsError, match=message):
        demo.sweep(u8, runs)
