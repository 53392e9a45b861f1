"""What the stages hand each other: small frozen records instead of dicts, so a flow reads ``checked.profile`` and
a reader (or a type checker) can follow it. ``output`` is the URI of the stage's main file; run.json's ``stages``
records it. A domain adds the fields of its own stages by subclassing these next to its tasks."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class Output:
    """A stage that wrote one file."""

    output: str


@dataclass(frozen=True, kw_only=True)
class Ingested(Output):
    """Records read from the input into the run folder."""

    read: dict = field(default_factory=dict)  # what was read (files, formats, columns found), for run.json's inputs


@dataclass(frozen=True, kw_only=True)
class Checked(Output):
    """Records checked: the valid ones in ``output``, the others quarantined, a table for the gate."""

    profile: str  # the table the gate validates
    records_in: int
    records_valid: int
    records_quarantined: int


@dataclass(frozen=True, kw_only=True)
class Trained(Output):
    """The model a run trained, or the champion it reused, with its test metrics beside the baselines'."""

    model: dict  # run.json's model: name, version, trained or reused, promotion and its comparison
    metrics: dict
    baselines: dict
    rare_classes: list = field(default_factory=list)  # classes of fewer than 10 records (tasks.splits.rare_classes)
