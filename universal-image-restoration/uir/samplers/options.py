"""Sampler options: each sampler declares the keys it reads (its `Options` block); the YAML
`sampler:` block is the reference's flat union of them (`SamplerBlock`).

    class HeunOptions(SamplerOptions):          # declared once, with the sampler
        solver_type: str = option("ode", check=choice(("ode", "sde")), help="...")

    block = SamplerBlock.read({"num_sample_steps": 10, "order": 3})   # validated key by key
    block.options_for(MRSampler, num_sample_steps=5)                  # MR Sampler's own block

A key that no registered sampler reads is an error naming the closest valid key; a key that the
samplers of a run do not read is listed by `unread_keys` (test.py logs it) and otherwise ignored,
so the reference's option files, whose `sampler:` block always holds MR Sampler's keys, load
unchanged whatever sampler they choose.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from uir.common.checks import check_keys, integer, optional, choice
from uir.common.declared import Block, keys_of, option, read, to_dict
from uir.samplers.registry import SAMPLERS
from uir.sde.predictions import FIT_TARGETS

MAX_STEPS = 100_000  # more steps than this would allocate gigabytes of time grid, and gain nothing


@dataclass(frozen=True)
class SamplerOptions(Block):
    """The keys every sampler reads. A sampler with keys of its own subclasses this block."""

    section = "sampler"

    num_sample_steps: int = option(20, check=integer(minimum=1, maximum=MAX_STEPS),
                                   help="steps (NFE for one-call-per-step samplers)")
    fit_target: str | None = option(None, check=optional(choice(FIT_TARGETS)),
                                    help="what the network predicts; unset: the sampler's default (mrsampler: "
                                         "data, the others: noise, as the reference assumes)")


def option_keys(options_class: type[SamplerOptions]) -> tuple[str, ...]:
    return tuple(keys_of(options_class))


def _field_of(options_class: type[SamplerOptions], key: str):
    return next(f for f in fields(options_class) if f.name == key)


@dataclass(frozen=True)
class SamplerBlock:
    """The `sampler:` block as written (`given`, each value checked by every sampler that reads its
    key), and the samplers it serves (`served`: `serving` fills in their defaults, so that the block
    written back says every setting they use)."""

    given: Mapping[str, Any] = field(default_factory=dict)
    served: tuple[type, ...] = ()  # sampler classes

    @classmethod
    def read(cls, raw: Any, where: str = "sampler", samplers: Iterable[type] | None = None) -> "SamplerBlock":
        """Validate a raw `sampler:` mapping against the registered samplers (or `samplers`)."""
        everyone = list(SAMPLERS.values()) if samplers is None else list(samplers)
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: expected a mapping of keys, got {raw!r}")
        valid = list(dict.fromkeys(k for s in everyone for k in option_keys(s.Options)))
        check_keys(where, raw, valid)
        given: dict[str, Any] = {}
        for key, value in raw.items():
            for sampler in everyone:
                if key in option_keys(sampler.Options):
                    f = _field_of(sampler.Options, key)
                    check = f.metadata.get("check")
                    if value is None and (f.metadata.get("null_is_default") or f.default is None):
                        given[key] = None
                    else:
                        given[key] = check(f"{where}.{key}", value) if check is not None else value
        return cls(given)

    def serving(self, samplers: Iterable[type], where: str = "sampler") -> "SamplerBlock":
        """This block for a run of `samplers`: each one's options checked as a whole (rules that
        relate keys), its defaults written back with the block."""
        served = tuple(dict.fromkeys(samplers))
        given: dict[str, Any] = {}
        for sampler in served:
            given.update({k: v for k, v in to_dict(self.options_for(sampler, where=where)).items() if k not in given})
        return SamplerBlock({**given, **self.given}, served)

    @property
    def num_sample_steps(self) -> int:
        steps = self.given.get("num_sample_steps")
        return SamplerOptions.num_sample_steps if steps is None else steps  # type: ignore[return-value]

    def options_for(self, sampler: type, where: str = "sampler", **changes: Any) -> SamplerOptions:
        """`sampler`'s own options: the keys of this block it reads, then `changes`."""
        keys = option_keys(sampler.Options)
        raw = {k: v for k, v in self.given.items() if k in keys and v is not None}
        return read(sampler.Options, {**raw, **changes}, where)

    def unread_keys(self, samplers: Iterable[type]) -> list[str]:
        """The keys given here that none of `samplers` reads."""
        read_by = {k for s in samplers for k in option_keys(s.Options)}
        return [k for k in self.given if k not in read_by]

    def to_dict(self) -> dict[str, Any]:
        """The keys as given, with the served samplers' defaults filled in (`serving`); it reads back equal."""
        return dict(self.given)


def check_overrides(sampler: type, given: Mapping[str, Any], where: str) -> None:
    """Keys that differ for one sampler's points (a sweep run's `set:`): each one that sampler
    reads, with a valid value."""
    keys = [k for k in option_keys(sampler.Options) if k != "num_sample_steps"]
    for key in given:
        readers = [s.name for s in SAMPLERS.values() if key in option_keys(s.Options)]
        if key not in keys and readers:
            raise ValueError(f"{where}.{key}: sampler {sampler.name!r} does not read this key (it is "
                             f"{' and '.join(readers)}'s); its keys: {', '.join(keys)}")
    SamplerBlock.read(given, where, samplers=[sampler])


def sampler_block(key: str, value: Any) -> SamplerBlock:
    """The check of an options field holding a `sampler:` block."""
    return SamplerBlock.read(value, key)
