"""Classifier two-sample test of generated jets (Lopez-Paz & Oquab, arXiv:1610.06545).

A particle-level classifier — jetlab's own GarNet (linear in the number of particles, the
default) or JEDI-net ΣO (``jetlab.models.build_tagger`` with two classes) — learns to
tell generated from real jets on half of each sample and is scored on the other half by
the ROC AUC (generated = positive class). AUC 0.5: the classifier finds no difference; 1.0:
every generated jet is recognised. The error is the standard deviation of the AUC over
bootstrap resamplings of the test half (real and generated resampled separately).

That error leaves out the classifier's own training: another split of the jets, initialisation
or batch order moves the AUC by several times as much. ``repeats`` K > 1 trains K classifiers,
each with seed ``seed + k`` (its own split, initialisation, batch order), and reports the mean
AUC with the standard error of that mean, s/√K (s the sample standard deviation of the K
AUCs), beside s itself and the K values.

Both samples are cut to the same number of jets n (shuffled with ``seed``), so training and
test each hold n/2 real and n/2 generated jets. Particle inputs (η_rel, φ_rel, pT_rel,
log pT_rel) are standardised with the training half's real particles. Training is bounded
by ``epochs`` and ``max_seconds`` (checked after every batch) and seeded; on CPU.

Shapes: jets (N, P, 3) or (N, P, 4 with mask column), optional masks (N, P) bool.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from jetlab.errors import JetlabError
from jetlab.metrics.jet_samples import CLASSIFIER_MIN_JETS, as_particles
from jetlab.metrics.tagging import roc_auc, roc_curve
from jetlab.models import build_tagger

__all__ = ["CLASSIFIER_MIN_JETS", "CLASSIFIER_MODELS", "classifier_two_sample_test", "particle_inputs"]

CLASSIFIER_MODELS = ("garnet", "jedinet-sumo")


def particle_inputs(particles: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The classifier's particle inputs: (η, φ, pT, log pT), padded particles all 0.

    Args:
        particles: (η, φ, pT) particles.
        mask: which particles are real.

    Returns:
        float32 inputs.

    Shapes:
        - particles: ``(jets, particles, 3)``
        - mask: ``(jets, particles)`` bool
        - returns: ``(jets, particles, 4)``
    """
    log_pt = np.log(np.where(mask & (particles[..., 2] > 0), particles[..., 2], 1.0))
    out = np.concatenate([particles, log_pt[..., None]], axis=-1)
    out[~mask] = 0.0
    return out.astype(np.float32)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    return roc_auc(*roc_curve(labels, scores)[:2])


def classifier_two_sample_test(real, generated, *, real_mask=None, generated_mask=None,
                               model: str = "garnet", epochs: int = 20, max_seconds: float = 60.0,
                               batch_size: int = 128, learning_rate: float = 1e-3,
                               n_bootstrap: int = 200, seed: int = 0, repeats: int = 1,
                               hyperparameters: dict | None = None) -> dict:
    """Train a classifier real vs generated on half the jets, ROC AUC on the other half
    (a classifier two-sample test, Lopez-Paz & Oquab, arXiv:1610.06545).

    Args:
        real: real jets as in :mod:`jetlab.metrics.generation` (numpy or torch).
        generated: generated jets, the same layout.
        real_mask: which particles of ``real`` are real.
        generated_mask: the same for ``generated``.
        model: ``"garnet"`` or ``"jedinet-sumo"``.
        epochs: training epochs at most.
        max_seconds: training time at most (whichever of the two ends first).
        batch_size: jets per step of Adam on the cross-entropy.
        learning_rate: Adam's learning rate.
        n_bootstrap: resamplings of the test half for the error.
        seed: shuffling, initialisation, batch order and bootstrap.
        repeats: classifiers trained, with seeds ``seed``, ``seed + 1``, ... (module docstring).
        hyperparameters: overrides of the model's default hyperparameters.

    Returns:
        ``{"auc", "auc_std", "n_train", "n_test", "epochs", "seconds", "model", "repeats"}`` with
        n_train / n_test the jets of each sample in each half, ``epochs`` the epochs completed
        (the fewest of the repeats) and ``seconds`` the training time (all repeats); with
        ``repeats`` > 1 also ``aucs`` (each repeat's) and ``auc_spread`` (their standard
        deviation), ``auc`` their mean and ``auc_std`` its standard error.

    Shapes:
        - real: ``(jets, particles, 3)`` or ``(jets, particles, 4)``
        - generated: ``(other_jets, particles, 3)`` or ``(other_jets, particles, 4)``
        - real_mask, generated_mask: ``(jets, particles)``, ``(other_jets, particles)`` bool
    """
    if model not in CLASSIFIER_MODELS:
        raise JetlabError(f"unknown classifier {model!r}; choose {', '.join(CLASSIFIER_MODELS)}")
    real, real_mask = as_particles(real, real_mask, "real jets")
    generated, generated_mask = as_particles(generated, generated_mask, "generated jets")
    if real.shape[1] != generated.shape[1]:
        raise JetlabError(f"real jets have {real.shape[1]} particle slots, generated jets "
                          f"{generated.shape[1]}")
    if repeats < 1:
        raise JetlabError(f"the classifier test needs repeats >= 1, got {repeats}")
    n = min(len(real), len(generated))
    if n < CLASSIFIER_MIN_JETS:
        raise JetlabError(f"the classifier test needs at least {CLASSIFIER_MIN_JETS} jets in each sample, got {n}")
    settings = dict(model=model, epochs=epochs, max_seconds=max_seconds, batch_size=batch_size,
                    learning_rate=learning_rate, n_bootstrap=n_bootstrap, hyperparameters=hyperparameters)
    runs = [_train_and_score(real, real_mask, generated, generated_mask, seed=seed + k, **settings)
            for k in range(repeats)]
    result = {**runs[0], "repeats": repeats}
    if repeats > 1:
        aucs = [run["auc"] for run in runs]
        spread = float(np.std(aucs, ddof=1))
        result.update(auc=float(np.mean(aucs)), auc_std=spread / np.sqrt(repeats), auc_spread=spread, aucs=aucs,
                      epochs=min(run["epochs"] for run in runs),
                      seconds=round(sum(run["seconds"] for run in runs), 3))
    return result


def _train_and_score(real, real_mask, generated, generated_mask, *, model, epochs, max_seconds, batch_size,
                     learning_rate, n_bootstrap, seed, hyperparameters) -> dict:
    """One classifier: split, train, score (:func:`classifier_two_sample_test`, one repeat)."""
    n = min(len(real), len(generated))
    rng = np.random.default_rng(seed)
    pick_real, pick_gen = rng.permutation(len(real))[:n], rng.permutation(len(generated))[:n]
    half = n // 2
    inputs = [particle_inputs(real[pick_real], real_mask[pick_real]),
              particle_inputs(generated[pick_gen], generated_mask[pick_gen])]
    masks = [real_mask[pick_real], generated_mask[pick_gen]]
    train_x = np.concatenate([inputs[0][:half], inputs[1][:half]])
    train_m = np.concatenate([masks[0][:half], masks[1][:half]])
    test_x = np.concatenate([inputs[0][half:], inputs[1][half:]])
    test_m = np.concatenate([masks[0][half:], masks[1][half:]])
    train_y = np.repeat([0, 1], half)
    test_y = np.repeat([0, 1], n - half)
    reference = train_x[:half][train_m[:half]]
    shift, scale = reference.mean(0), reference.std(0)
    scale[scale == 0] = 1.0
    train_x = np.where(train_m[..., None], (train_x - shift) / scale, 0.0).astype(np.float32)
    test_x = np.where(test_m[..., None], (test_x - shift) / scale, 0.0).astype(np.float32)

    torch.manual_seed(seed)
    network = build_tagger(model, n_particles=real.shape[1], n_features=4, n_classes=2,
                           **(hyperparameters or {}))
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    x, m, y = torch.from_numpy(train_x), torch.from_numpy(train_m), torch.from_numpy(train_y)
    generator = torch.Generator().manual_seed(seed)
    start, done = time.perf_counter(), 0
    network.train()
    while done < epochs and time.perf_counter() - start < max_seconds:
        for batch in torch.randperm(len(x), generator=generator).split(batch_size):
            optimizer.zero_grad()
            loss_fn(network(x[batch], m[batch]), y[batch]).backward()
            optimizer.step()
            if time.perf_counter() - start >= max_seconds:
                break
        else:
            done += 1
    seconds = time.perf_counter() - start
    network.eval()
    with torch.no_grad():
        tx, tm = torch.from_numpy(test_x), torch.from_numpy(test_m)
        logits = torch.cat([network(tx[i:i + 1024], tm[i:i + 1024]) for i in range(0, len(tx), 1024)])
        scores = (logits[:, 1] - logits[:, 0]).double().numpy()
    auc = _auc(test_y, scores)
    boot = []
    n_test = n - half
    for _ in range(n_bootstrap):
        rows = np.concatenate([rng.integers(0, n_test, n_test), n_test + rng.integers(0, n_test, n_test)])
        boot.append(_auc(test_y[rows], scores[rows]))
    return {"auc": auc, "auc_std": float(np.std(boot)) if boot else float("nan"),
            "n_train": int(half), "n_test": int(n_test), "epochs": int(done),
            "seconds": round(seconds, 3), "model": model}
