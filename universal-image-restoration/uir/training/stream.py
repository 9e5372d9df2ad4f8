"""The training stream: item g of the run, for every g = step x batch_size + k.

Each item is a random `patch_size` crop (the same window of LQ and GT) with random flips and
a transposition, as the reference's `util.augment` draws them (horizontal flip if use_flip,
vertical flip and transposition if use_rot), with its IR-SDE time t ~ U{1..T} and its noise.
Everything an item holds comes from a generator seeded by (seed, g) alone, so:

- a step's batch is the same whatever the number of processes: process r of W takes the items
  k = r b .. (r + 1) b - 1 of the step (b = batch_size / W, as the reference splits the
  batch), and one step of W processes equals one step of one process with the whole batch;
- a resumed run (with any number of processes) continues the stream exactly, without a saved
  generator state;
- the data loader's worker processes (`n_workers`) read and crop items in any order.

Sources: `TaskFolders` (mode MD, the reference's layout <root>/<task>/{LQ,GT}): the images
are read from disk when an item needs them, and tasks are drawn in balance: every run of
len(tasks) consecutive items holds each task once, in random order (the reference's MD
dataset takes the task from the item's index modulo the number of tasks), whatever each
task's number of images; the image within the task is uniform. `MemoryPairs` (mode memory,
the demo's): every pair of every task held in memory, drawn uniformly.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from uir.data.paired import DataError, ImagePair
from uir.training.data import PairSet, read_pair, task_pairs

Pair = tuple[Tensor, Tensor]  # LQ, GT: uint8 [3, H, W]


def item_generator(seed: int, item: int, stream: int = 0) -> np.random.Generator:
    """The generator of item `item` (stream 0) or of a block of task draws (stream 1)."""
    return np.random.default_rng([seed, stream, item])


def _chw(img: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


class MemoryPairs:
    """Every pair in memory; item g takes one uniformly over all of them."""

    def __init__(self, pair_sets: Sequence[PairSet], patch_size: int):
        self.sets = list(pair_sets)
        self.num_pairs = sum(s.lq.shape[0] for s in self.sets)
        small = [tuple(s.lq.shape[-2:]) for s in self.sets if min(s.lq.shape[-2:]) < patch_size]
        if small:
            raise DataError(f"datasets.train.patch_size: {patch_size} is larger than images of size {small[0]}; "
                            f"lower patch_size")

    def pick(self, seed: int, item: int, rng: np.random.Generator) -> Pair:
        index = int(rng.integers(self.num_pairs))
        for s in self.sets:
            if index < s.lq.shape[0]:
                return s.lq[index], s.gt[index]
            index -= s.lq.shape[0]
        raise IndexError(index)


class TaskFolders:
    """The pairs of <root>/<task>/{LQ,GT}, listed once and read when an item needs them."""

    def __init__(self, root: str, tasks: Sequence[str], option: str = "datasets.train"):
        self.option = option
        self.tasks = tuple(tasks)
        self.pairs: list[list[ImagePair]] = [task_pairs(root, "", task, option=option) for task in self.tasks]
        empty = [t for t, p in zip(self.tasks, self.pairs) if not p]
        if empty:
            raise DataError(f"{option}: no images in {', '.join(f'{root}/{t}/LQ' for t in empty)}")

    @property
    def num_pairs(self) -> int:
        return sum(len(p) for p in self.pairs)

    def task_of(self, seed: int, item: int) -> int:
        """Balanced: items n i .. n i + n - 1 (n tasks) hold each task once, in random order."""
        n = len(self.tasks)
        return int(item_generator(seed, item // n, stream=1).permutation(n)[item % n])

    def pick(self, seed: int, item: int, rng: np.random.Generator) -> Pair:
        pairs = self.pairs[self.task_of(seed, item)]
        lq, gt = read_pair(pairs[int(rng.integers(len(pairs)))], self.option)
        return _chw(lq), _chw(gt)


def augment(lq: Tensor, gt: Tensor, flip_h: bool, flip_v: bool, rot90: bool) -> Pair:
    """The same flips and transposition for both images `[3, H, W]`."""
    dims = [d for d, on in ((-1, flip_h), (-2, flip_v)) if on]
    if dims:
        lq, gt = lq.flip(dims), gt.flip(dims)
    if rot90:
        lq, gt = lq.transpose(-1, -2), gt.transpose(-1, -2)
    return lq, gt


class CropItems(Dataset):
    """`items[g]`: {"lq", "gt": uint8 [3, p, p]; "t": int64; "noise": float32 [3, p, p]}."""

    def __init__(self, source: MemoryPairs | TaskFolders, patch_size: int, use_flip: bool, use_rot: bool,
                 T: int, seed: int):
        self.source, self.patch_size, self.use_flip, self.use_rot = source, patch_size, use_flip, use_rot
        self.T, self.seed = T, seed

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        rng = item_generator(self.seed, item)
        lq, gt = self.source.pick(self.seed, item, rng)
        p = self.patch_size
        h, w = lq.shape[-2:]
        if min(h, w) < p:
            raise DataError(f"datasets.train.patch_size: {p} is larger than an image of size {(h, w)}; "
                            f"lower patch_size")
        top, left = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
        flips = (rng.random(3) < 0.5).tolist()
        lq, gt = augment(lq[:, top:top + p, left:left + p], gt[:, top:top + p, left:left + p],
                         self.use_flip and flips[0], self.use_rot and flips[1], self.use_rot and flips[2])
        t = int(rng.integers(1, self.T + 1))
        noise = torch.randn(3, p, p, generator=torch.Generator().manual_seed(int(rng.integers(2**63))))
        return {"lq": lq.contiguous(), "gt": gt.contiguous(), "t": torch.tensor(t), "noise": noise}


class StepItems(Sampler[int]):
    """This process's items of steps start .. niter - 1: k = rank b .. rank b + b - 1 of each step."""

    def __init__(self, start: int, niter: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.start, self.niter, self.batch_size = start, niter, batch_size
        self.per_rank = batch_size // world_size
        self.first = rank * self.per_rank

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start, self.niter):
            base = step * self.batch_size + self.first
            yield from range(base, base + self.per_rank)

    def __len__(self) -> int:
        return (self.niter - self.start) * self.per_rank


def batches(items: CropItems, sampler: StepItems, workers: int) -> DataLoader:
    """One batch per step, this process's share, read by `workers` processes (0: this one)."""
    return DataLoader(items, batch_size=sampler.per_rank, sampler=sampler, num_workers=workers,
                      persistent_workers=False, prefetch_factor=2 if workers else None)
