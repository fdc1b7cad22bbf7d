"""Search spaces: which training settings and model hyperparameters a study tunes, and over what.

A space is a YAML file. ``jetlab hpo run --model M`` uses the one shipped as
``jetlab/hpo/spaces/M.yaml`` (JEDI-net's is the paper's, arXiv:1908.05318 Sec. 5);
``--space FILE.yaml`` replaces it. Two sections, each ``name: {range}``:

.. code-block:: yaml

    settings:        # fields of the recipe's config: the train flags (--lr, --optimizer, ...)
      lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      optimizer: {choices: [adam, adadelta]}
    hparams:         # model hyperparameters: --hp KEY=VALUE (generators: --hp NET.KEY=VALUE)
      hidden: {type: int, low: 5, high: 50}
      f_r_activation: {choices: [relu, elu, selu]}
      units: {choices: [[64, 32], [128, 64, 32]]}     # any YAML value may be a choice

A range is ``type: int`` or ``float`` with ``low``, ``high`` and optionally ``log: true`` or
``step``; or ``choices: [...]``. The Optuna parameter is called by its key. Choices that are
not a number, string, bool or null (e.g. the layer widths above) are handed to Optuna as
their JSON text and decoded when applied.

A key may instead hold a list of ranges, each with ``when: {KEY: VALUE, ...}`` naming
choices of keys listed before it; a trial tunes the one whose conditions hold (none: the
key keeps its fixed value). The Optuna name of such an entry is ``key|value[|value...]``:

.. code-block:: yaml

    settings:
      optimizer: {choices: [adam, adadelta]}
      lr:                                   # Adam's step is lr; AdaDelta's is lr x its own
        - {when: {optimizer: adam}, type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        - {when: {optimizer: adadelta}, type: float, low: 0.1, high: 1.0, log: true}

Everything not in the space is fixed: the recipe's defaults, overridden by the train flags
given to ``jetlab hpo run``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from importlib import resources
from typing import Any

from jetlab.errors import JetlabError
from jetlab.utils.config import read_yaml

__all__ = ["Param", "SearchSpace", "packaged_spaces"]

SECTIONS = ("settings", "hparams")
_PRIMITIVE = (str, int, float, bool, type(None))


@dataclasses.dataclass(frozen=True)
class Param:
    """One tuned quantity: Optuna parameter ``name`` = ``key`` of ``section``."""

    section: str
    key: str
    kind: str  # "int", "float" or "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()
    #: ((key, value), ...): tuned only in trials where these keys took these values
    when: tuple = ()

    @property
    def name(self) -> str:
        return "|".join([self.key, *(str(value) for _, value in self.when)])

    def applies(self, chosen: dict[str, Any]) -> bool:
        return all(key in chosen and chosen[key] == value for key, value in self.when)

    def _encoded_choices(self) -> list:
        return [c if isinstance(c, _PRIMITIVE) else json.dumps(c) for c in self.choices]

    def suggest(self, trial) -> Any:
        """Ask Optuna's ``trial`` for this parameter; returns the decoded value."""
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
        return self.decode(trial.suggest_categorical(self.name, self._encoded_choices()))

    def decode(self, value: Any) -> Any:
        """A stored Optuna value -> the value the config takes."""
        if self.kind == "categorical":
            encoded = self._encoded_choices()
            if value in encoded:
                return self.choices[encoded.index(value)]
        return value


def _number(value, where: str) -> float:
    if isinstance(value, bool):
        raise JetlabError(f"{where}: expected a number, got {value!r}")
    try:  # PyYAML reads 1e-4 (no dot) as a string
        number = float(value)
    except (TypeError, ValueError):
        raise JetlabError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise JetlabError(f"{where}: expected a finite number, got {value!r}")
    return number


def _param(section: str, key: str, spec, source: str) -> Param:
    where = f"{source}: {section}.{key}"
    if not isinstance(spec, dict):
        raise JetlabError(f"{where}: expected a mapping like {{type: int, low: 1, high: 8}} or {{choices: [...]}}")
    unknown = sorted(set(spec) - {"type", "low", "high", "log", "step", "choices", "when"})
    if unknown:
        raise JetlabError(f"{where}: unknown field(s) {', '.join(unknown)}; "
                          "known: type, low, high, log, step, choices, when")
    when = spec.get("when") or {}
    if not isinstance(when, dict):
        raise JetlabError(f"{where}: when must be a mapping KEY: VALUE")
    if any(not isinstance(v, _PRIMITIVE) for v in when.values()):
        raise JetlabError(f"{where}: when compares with plain values (numbers, strings, bools)")
    when = tuple((str(k), v) for k, v in when.items())
    spec = {k: v for k, v in spec.items() if k != "when"}
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) - {"choices", "type"} or spec.get("type", "categorical") != "categorical":
            raise JetlabError(f"{where}: choices take no type/low/high/log/step")
        if not isinstance(choices, list) or not choices:
            raise JetlabError(f"{where}: choices must be a non-empty list")
        return Param(section, key, "categorical", choices=tuple(choices), when=when)
    kind = spec.get("type")
    if kind not in ("int", "float"):
        raise JetlabError(f"{where}: type must be int or float (or give choices), got {kind!r}")
    if "low" not in spec or "high" not in spec:
        raise JetlabError(f"{where}: a range needs low and high")
    low, high = _number(spec["low"], where + ".low"), _number(spec["high"], where + ".high")
    step = None if spec.get("step") is None else _number(spec["step"], where + ".step")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise JetlabError(f"{where}: log must be true or false")
    if kind == "int" and not (low.is_integer() and high.is_integer() and (step is None or step.is_integer())):
        raise JetlabError(f"{where}: an int range needs integer low, high and step")
    if not low <= high:
        raise JetlabError(f"{where}: low must not exceed high ({low} > {high})")
    if log and (low <= 0 or step is not None):
        raise JetlabError(f"{where}: a log range needs low > 0 and no step")
    if step is not None and step <= 0:
        raise JetlabError(f"{where}: step must be positive")
    return Param(section, key, kind, low=low, high=high, log=log, step=step, when=when)


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The parameters of a study (module docstring) and where they came from."""

    params: tuple[Param, ...]
    source: str = dataclasses.field(default="space", compare=False)

    @classmethod
    def from_dict(cls, values, source: str = "space") -> SearchSpace:
        if not isinstance(values, dict):
            raise JetlabError(f"{source}: expected a mapping with sections {' and '.join(SECTIONS)}")
        unknown = sorted(set(values) - set(SECTIONS) - {"model", "description"})
        if unknown:
            raise JetlabError(f"{source}: unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
        params = []
        for section in SECTIONS:
            entries = values.get(section) or {}
            if not isinstance(entries, dict):
                raise JetlabError(f"{source}: {section} must be a mapping of name -> range")
            for key, spec in entries.items():
                alternatives = spec if isinstance(spec, list) else [spec]
                for one in alternatives:
                    param = _param(section, str(key), one, source)
                    known = {p.key for p in params}
                    missing = [k for k, _ in param.when if k not in known]
                    if missing:
                        raise JetlabError(f"{source}: {section}.{key}: when refers to {', '.join(missing)}, "
                                          "which is not tuned before it")
                    if len(alternatives) > 1 and not param.when:
                        raise JetlabError(f"{source}: {section}.{key}: each of several ranges needs a when")
                    params.append(param)
        names = [p.name for p in params]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise JetlabError(f"{source}: {', '.join(twice)} tuned twice (a key may appear in settings or hparams "
                              "once, and its ranges need different when conditions)")
        if not params:
            raise JetlabError(f"{source}: the space tunes nothing (no settings, no hparams)")
        return cls(tuple(params), source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SearchSpace:
        return cls.from_dict(read_yaml(path, what="search-space file"), str(path))

    @classmethod
    def packaged(cls, model: str) -> SearchSpace:
        """The space shipped for ``model`` (``jetlab/hpo/spaces/<model>.yaml``)."""
        import yaml

        spaces = packaged_spaces()
        if model not in spaces:
            raise JetlabError(f"no search space shipped for {model!r} (shipped: {', '.join(sorted(spaces))}); "
                              "write one and pass --space FILE.yaml")
        return cls.from_dict(yaml.safe_load(spaces[model]), f"jetlab/hpo/spaces/{model}.yaml")

    def to_dict(self) -> dict:
        """The YAML form (what a study stores, what :meth:`from_dict` reads back)."""
        out: dict[str, dict] = {}
        for p in self.params:
            if p.kind == "categorical":
                spec: dict[str, Any] = {"choices": list(p.choices)}
            else:
                to = int if p.kind == "int" else float
                spec = {"type": p.kind, "low": to(p.low), "high": to(p.high)}
                if p.log:
                    spec["log"] = True
                if p.step is not None:
                    spec["step"] = to(p.step)
            if p.when:
                spec["when"] = dict(p.when)
            out.setdefault(p.section, {}).setdefault(p.key, []).append(spec)
        return {section: {key: specs[0] if len(specs) == 1 and "when" not in specs[0] else specs
                          for key, specs in entries.items()} for section, entries in out.items()}

    def section(self, name: str) -> list[Param]:
        return [p for p in self.params if p.section == name]

    def suggest(self, trial) -> dict[str, dict[str, Any]]:
        """``{"settings": {key: value}, "hparams": {key: value}}`` for Optuna ``trial``."""
        chosen: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        flat: dict[str, Any] = {}
        for p in self.params:
            if not p.applies(flat):
                continue
            if p.key in flat:
                raise JetlabError(f"{self.source}: two ranges of {p.key} apply at once ({p.name}); make their when "
                                  "conditions exclusive")
            chosen[p.section][p.key] = flat[p.key] = p.suggest(trial)
        return chosen

    def decode(self, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """A finished trial's ``params`` (Optuna's stored values) in the form of :meth:`suggest`."""
        chosen: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        for p in self.params:
            if p.name in params:
                chosen[p.section][p.key] = p.decode(params[p.name])
        return chosen


def packaged_spaces() -> dict[str, str]:
    """model name -> YAML text of the spaces shipped with jetlab."""
    folder = resources.files("jetlab.hpo") / "spaces"
    return {entry.name.removesuffix(".yaml"): entry.read_text() for entry in folder.iterdir()
            if entry.name.endswith(".yaml")}
