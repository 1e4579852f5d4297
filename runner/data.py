"""Synthetic training data, served through a real ``torch.utils.data.DataLoader``.

The runner measures the training step as a job runs it, input pipeline
included, so the data knobs (``dataloader_workers``, ``pin_memory``,
``prefetch_factor``, ``persistent_workers``) act as they do in real jobs. Each
sample costs some host CPU time that stands in for tokenisation and collation
(by default the analytic model's per-sample cost; ``live.sample_cost_s``).

Tokens follow a Zipf law over the vocabulary, as words in text roughly do, so
the loss has something to learn (it falls from about ln(vocab) towards the
distribution's entropy) and a run that diverges shows. Every sample fills
``seq_len`` (packed data): packing and padding are not modelled.
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader, Dataset

from pytest_goblin.schemas import WorkloadConfig

ZIPF_EXPONENT = 1.1
"""Word frequencies in natural text follow roughly rank^-1; a little steeper keeps
the distribution normalisable for any vocabulary size."""


def _busy_wait(seconds: float) -> None:
    """Hold the CPU (and the GIL) for ``seconds``, as a Python tokeniser would."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class SyntheticTokens(Dataset[torch.Tensor]):
    """``length`` samples of ``seq_len + 1`` token ids (inputs and shifted targets).

    Sample ``i`` is the same in every run and every worker process: it is
    drawn from a generator seeded with ``(seed, i)``.
    """

    def __init__(
        self, vocab: int, seq_len: int, length: int, sample_cost_s: float, seed: int = 0
    ) -> None:
        ranks = torch.arange(1, vocab + 1, dtype=torch.float64)
        weights = ranks.pow(-ZIPF_EXPONENT)
        self.cdf = weights.cumsum(0) / weights.sum()  # (vocab,)
        self.vocab = vocab
        self.seq_len = seq_len
        self.length = length
        self.sample_cost_s = sample_cost_s
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        _busy_wait(self.sample_cost_s)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        uniform = torch.rand(self.seq_len + 1, generator=generator, dtype=torch.float64)
        return torch.searchsorted(self.cdf, uniform).clamp_(max=self.vocab - 1)  # (T+1,)


def make_loader(
    config: WorkloadConfig,
    vocab: int,
    samples: int,
    sample_cost_s: float,
    device: torch.device,
    seed: int = 0,
) -> DataLoader[torch.Tensor]:
    """A DataLoader over ``samples`` synthetic samples with the workload's data knobs.

    As the Hugging Face Trainer does, ``prefetch_factor`` and
    ``persistent_workers`` are passed only with worker processes (PyTorch refuses
    them without), and memory is pinned only for an accelerator.
    """
    dataset = SyntheticTokens(vocab, config.seq_len, samples, sample_cost_s, seed)
    workers = config.dataloader_workers
    options: dict[str, object] = {}
    if workers > 0:
        options["persistent_workers"] = config.dataloader_persistent_workers
        if config.dataloader_prefetch_factor is not None:
            options["prefetch_factor"] = config.dataloader_prefetch_factor
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=False,
        drop_last=True,
        num_workers=workers,
        pin_memory=config.dataloader_pin_memory and device.type != "cpu",
        **options,  # type: ignore[arg-type]  # DataLoader's keywords are typed one by one
    )
