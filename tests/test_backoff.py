"""Out-of-memory back-off (uir.evaluation.backoff), on the CPU by raising CUDA's OOM error from
a fake batch function: halving, failures that name the image, kept results, remembered limits."""
from __future__ import annotations

import weakref

import pytest
import torch

from uir.evaluation.backoff import OomBackoff, is_out_of_memory, suggest_tile
from uir.tiling import TileSettings

SIZES = {i: (f"img{i:03d}.png", 64, 96) for i in range(10)}


def fake_gpu(fits: int, too_big: frozenset[int] = frozenset(), error=torch.cuda.OutOfMemoryError):
    """A batch function that runs out of memory above `fits` images, or whenever an image of
    `too_big` is in the batch; it records every batch it is called with."""
    calls: list[list[int]] = []

    def fn(batch: list[int]) -> list[int]:
        calls.append(list(batch))
        if len(batch) > fits or too_big & set(batch):
            raise error("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total capacity)")
        return [10 * i for i in batch]

    return fn, calls


def describe(index: int) -> tuple[str, int, int]:
    return SIZES[index]


def test_halves_down_to_the_size_that_fits_and_keeps_order():
    fn, calls = fake_gpu(fits=2)
    freed = []
    backoff = OomBackoff(describe, free=lambda: freed.append(1))
    done = backoff.run(fn, list(range(7)), key=(64, 96))
    assert [d.indices for d in done] == [[0, 1], [2, 3], [4, 5], [6]]
    assert [d.result for d in done] == [[0, 10], [20, 30], [40, 50], [60]]
    assert calls[:2] == [[0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3]]  # 7 -> 4 (+3) -> 2 (+2)
    assert len(freed) == sum(len(c) > 2 for c in calls) == 3  # 7, 4, 3 ran out of memory
    assert backoff.failures == []
    assert backoff.limits == {(64, 96): 2}


def test_the_size_reached_is_kept_for_later_batches_of_the_same_key():
    fn, calls = fake_gpu(fits=3)
    backoff = OomBackoff(describe, free=lambda: None)
    backoff.run(fn, list(range(6)), key="a")  # 6 -> 3: two OOM-free halves
    calls.clear()
    done = backoff.run(fn, list(range(6)), key="a")
    assert calls == [[0, 1, 2], [3, 4, 5]] and len(done) == 2  # no out-of-memory this time
    calls.clear()
    backoff.run(fn, [7, 8], key="b")  # another size starts at its full batch
    assert calls == [[7, 8]]


def test_an_image_too_big_alone_is_reported_and_the_rest_goes_on():
    fn, _ = fake_gpu(fits=8, too_big=frozenset({3}))
    backoff = OomBackoff(describe, free=lambda: None)
    done = backoff.run(fn, [0, 1, 2, 3, 4])
    assert [i for d in done for i in d.indices] == [0, 1, 2, 4]  # finished sub-batches are kept
    assert [d.indices for d in done] == [[0, 1, 2], [4]]
    (failure,) = backoff.failures
    assert (failure.index, failure.name, failure.height, failure.width) == (3, "img003.png", 64, 96)
    assert failure.error.startswith("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert failure.message == (
        "img003.png (96x64): out of GPU memory even alone; restore it with tiles, "
        "e.g. tile: {size: 48, overlap: 6, max_batch: 1}")


def test_the_old_runtime_error_counts_and_other_errors_propagate():
    fn, _ = fake_gpu(fits=1, error=RuntimeError)
    done = OomBackoff(describe, free=lambda: None).run(fn, [0, 1])
    assert [d.indices for d in done] == [[0], [1]]
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert not is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))

    def broken(batch):
        raise ValueError("a bug, not memory")

    with pytest.raises(ValueError, match="a bug"):
        OomBackoff(describe, free=lambda: None).run(broken, [0, 1])


def test_memory_of_the_failed_attempt_is_released_before_the_retry():
    refs = []
    alive_at_free = []

    def fn(batch):
        activations = torch.empty(len(batch), 1000)
        refs.append(weakref.ref(activations))
        if len(batch) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
        return len(batch)

    backoff = OomBackoff(describe, free=lambda: alive_at_free.append(refs[-1]() is not None))
    backoff.run(fn, [0, 1])
    assert alive_at_free == [False]


@pytest.mark.parametrize("height, width, current, expected", [
    (1536, 2048, None, TileSettings(256, 32, 12)),  # a quarter of the image's pixels per call
    (300, 200, None, TileSettings(144, 18, 1)),
    (1536, 2048, TileSettings(256, 32), TileSettings(256, 32, 8)),  # 16 tiles per call: fewer first
    (1536, 2048, TileSettings(256, 32, 5), TileSettings(256, 32, 2)),
    (300, 300, TileSettings(256, 32, 64), TileSettings(256, 32, 2)),  # 4 tiles in all
    (1536, 2048, TileSettings(256, 32, 1), TileSettings(128, 16, 1)),  # then smaller tiles
    (40, 40, TileSettings(16, 2, 1), None),
])
def test_tile_suggestions_need_less_memory(height, width, current, expected):
    assert suggest_tile(height, width, current) == expected


def test_failure_with_tiles_on_suggests_below_them():
    fn, _ = fake_gpu(fits=0)
    backoff = OomBackoff(lambda i: ("big.png", 1536, 2048), tile=TileSettings(256, 32, 1), free=lambda: None)
    assert backoff.run(fn, [0]) == []
    assert backoff.failures[0].message.endswith("e.g. tile: {size: 128, overlap: 16, max_batch: 1}")
