"""``jetlab hpo report``: what a study found, as tables, figures and commands.

Writes into OUT:

====================== ===============================================================
best_trials.md / .json the best ``top`` trials (one objective) or the Pareto front (several):
                       objective values, validation and test numbers, parameters, run
                       directory, and the ``jetlab ... train`` command that retrains it
history.png            objective value per trial number, best so far
importances.png        parameter importances per objective (Optuna's default evaluator,
                       PED-ANOVA in Optuna 5), when the study has enough complete trials
pareto.png             several objectives: the first two, Pareto front highlighted
intermediate.png       the per-epoch validation numbers the pruner saw, pruned trials grey
====================== ===============================================================
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np

from jetlab.errors import JetlabError
from jetlab.hpo.recipes import apply_params, train_command
from jetlab.hpo.study import close_storage, open_storage, open_study, quiet_optuna, trial_counts
from jetlab.utils.atomic import atomic_write_json, atomic_write_text
from jetlab.utils.secrets import mask_url
from jetlab.viz.hpo import plot_history, plot_importances, plot_intermediate, plot_pareto

__all__ = ["write_report"]

log = logging.getLogger(__name__)

#: numbers a trial keeps beside its objectives (user attributes) -> column title
_COLUMNS = {"val_accuracy": "val acc", "val_auc": "val AUC", "test_accuracy": "test acc", "test_auc": "test AUC",
            "val_w1m": "val W1-M", "final_w1m": "final W1-M", "n_parameters": "parameters",
            "latency_ms": "ms/100 jets", "epochs_run": "epochs"}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _importances(study, spec) -> tuple[dict, str | None]:
    """objective -> {param: importance}, or the reason there are none."""
    result = {}
    try:
        with quiet_optuna() as optuna:
            # PED-ANOVA notes parameters seen in few trials (conditional ones): the numbers say as much
            warnings.filterwarnings("ignore", message="Some regimes for parameter", category=UserWarning)
            # ... and that it ranks what makes a target low: maximised objectives are negated below
            warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes", category=UserWarning)
            for i, (name, direction) in enumerate(zip(spec.objectives, spec.directions)):
                sign = -1.0 if direction == "maximize" else 1.0
                target = None if len(spec.objectives) == 1 else (lambda t, i=i, sign=sign: sign * t.values[i])
                values = optuna.importance.get_param_importances(study, target=target)
                if values:
                    result[name] = {k: float(v) for k, v in values.items()}
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        return {}, f"no importances: {str(exc).splitlines()[0]}"
    return result, None if result else "no importances: no parameter varies over the complete trials"


def write_report(storage_url: str, name: str, out, *, top: int = 5) -> dict:
    """Write the report of study ``name`` into ``out`` (module docstring); returns
    ``{"summary": one line, "files": [...], "best": [rows]}``."""
    if storage_url.startswith("sqlite:///") and not Path(storage_url.removeprefix("sqlite:///")).is_file():
        raise JetlabError(f"--storage {mask_url(storage_url)}: no such study database (give --storage, --dir or --study)")
    storage = open_storage(storage_url, heartbeat_s=0)
    try:
        return _write(open_study(storage, name), storage_url, name, Path(out), top)
    finally:
        close_storage(storage)


def _write(opened, storage_url: str, name: str, out: Path, top: int) -> dict:
    from optuna.trial import TrialState

    study, spec = opened
    out.mkdir(parents=True, exist_ok=True)
    recipe, directions, objectives = spec.recipe, spec.directions, list(spec.objectives)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    counts = trial_counts(study)
    if not complete:
        raise JetlabError(f"study {name!r} has no complete trial yet ({counts or 'no trials'})")
    if len(objectives) == 1:
        best = sorted(complete, key=lambda t: t.value, reverse=directions[0] == "maximize")[:top]
    else:
        best = sorted(study.best_trials, key=lambda t: t.values[0], reverse=directions[0] == "maximize")

    rows = []
    for rank, trial in enumerate(best, 1):
        chosen = spec.space.decode(trial.params)
        run = f"runs/{name}-trial-{trial.number}"
        try:
            command = train_command(apply_params(spec.base_config, recipe, chosen), recipe, run)
        except JetlabError:  # a fixed setting without a flag: retrain from the trial's own config
            command = f"{recipe.command} --config {trial.user_attrs.get('run_dir')}/config.yaml --out {run}"
        rows.append({"rank": rank, "trial": trial.number, "values": dict(zip(objectives, trial.values)),
                     "params": {k: v for section in chosen.values() for k, v in section.items()},
                     "numbers": {k: trial.user_attrs[k] for k in _COLUMNS if trial.user_attrs.get(k) is not None},
                     "run_dir": trial.user_attrs.get("run_dir"), "retry_of": trial.system_attrs.get("failed_trial"),
                     "command": command})

    files = []
    numbers = [t.number for t in complete]
    values = np.array([t.values for t in complete], dtype=float)
    pruned = {t.number: t.intermediate_values[max(t.intermediate_values)] for t in trials
              if t.state == TrialState.PRUNED and t.intermediate_values}
    title = f"study {name}: {spec.model}, sampler {spec.sampler}"
    plot_history(numbers, values, objectives, directions, out / "history.png",
                 pruned=pruned if len(objectives) == 1 and recipe.intermediate.endswith(objectives[0]) else None,
                 title=title)
    files.append("history.png")
    importances, no_importances = _importances(study, spec)
    if importances:
        plot_importances(importances, out / "importances.png", title=f"study {name}: parameter importances")
        files.append("importances.png")
    if len(objectives) > 1:
        front = {t.number for t in study.best_trials}
        plot_pareto(values[:, :2], np.array([n in front for n in numbers]), objectives[:2], directions[:2],
                    out / "pareto.png", numbers=numbers,
                    log_axes=tuple(o == "params" for o in objectives[:2]),
                    title=f"study {name}: Pareto front ({len(front)} of {len(complete)} trials)")
        files.append("pareto.png")
    curves = {t.number: (sorted(t.intermediate_values), [t.intermediate_values[s] for s in sorted(t.intermediate_values)])
              for t in trials if t.intermediate_values and t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    if curves:
        plot_intermediate(curves, set(pruned), out / "intermediate.png", ylabel=recipe.intermediate,
                          title=f"study {name}: {recipe.intermediate} per epoch")
        files.append("intermediate.png")

    state_counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    head = rows[0]
    summary = (f"study {name} ({spec.model}, {state_counts}): best trial {head['trial']} "
               + ", ".join(f"{k} {v:.4g}" for k, v in head["values"].items()))
    report = {"study": name, "storage": mask_url(storage_url), "model": spec.model, "recipe": recipe.name,
              "objectives": objectives, "directions": directions, "sampler": spec.sampler, "pruner": spec.pruner,
              "space": spec.space.to_dict(), "counts": counts, "best": rows, "importances": importances,
              "figures": list(files)}
    atomic_write_json(out / "best_trials.json", report)
    atomic_write_text(out / "best_trials.md", _markdown(report, no_importances, len(objectives) > 1))
    files[:0] = ["best_trials.md", "best_trials.json"]
    return {"summary": summary, "files": files, "best": rows}


def _markdown(report: dict, no_importances: str | None, pareto: bool) -> str:
    objectives = report["objectives"]
    params = list(dict.fromkeys(k for row in report["best"] for k in row["params"]))
    extra = [k for k in _COLUMNS if any(k in row["numbers"] for row in report["best"])]
    lines = [f"# Study `{report['study']}`: {report['model']}", "",
             f"Objective{'s' if len(objectives) > 1 else ''}: "
             + ", ".join(f"{o} ({d})" for o, d in zip(objectives, report["directions"]))
             + f"; sampler {report['sampler']}, pruner {report['pruner']}; trials: "
             + ", ".join(f"{n} {s.lower()}" for s, n in sorted(report["counts"].items())) + ".",
             "Objectives are validation numbers; test numbers are shown beside them, never tuned on.", "",
             "## " + ("Pareto front" if pareto else "Best trials"), "",
             "| # | trial | " + " | ".join(objectives + [_COLUMNS[k] for k in extra] + params) + " |",
             "|" + "---|" * (2 + len(objectives) + len(extra) + len(params))]
    for row in report["best"]:
        cells = [str(row["rank"]), str(row["trial"]) + (f" (retry of {row['retry_of']})" if row["retry_of"] is not None
                                                        else "")]
        cells += [_fmt(row["values"][o]) for o in objectives]
        cells += [_fmt(row["numbers"].get(k, "")) for k in extra]
        cells += [_fmt(row["params"].get(p, "")) for p in params]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Retrain", ""]
    for row in report["best"]:
        lines += [f"Trial {row['trial']} (run directory `{row['run_dir']}`):", "", "```", row["command"], "```", ""]
    lines += ["## Figures", ""] + [f"![{f}]({f})" for f in report["figures"]]
    if no_importances:
        lines += ["", f"({no_importances})"]
    return "\n".join(lines) + "\n"
