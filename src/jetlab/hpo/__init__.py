"""Hyperparameter optimisation on top of training (``jetlab hpo``), as the JEDI-net paper tuned
its network (Moreno et al., arXiv:1908.05318, Sec. 5: Bayesian optimisation over N¹, D_E,
D_O, the activations of f_R, f_O, φ_C and the optimizer).

Every trial is a real training run (:func:`~jetlab.training.tagger.train_tagger` or
:func:`~jetlab.training.generator.train_generator`) into its own kept run directory, scored
on the validation split; Optuna (the ``hpo`` extra) proposes the settings:

* :mod:`.space` — search spaces as YAML (``spaces/<model>.yaml`` shipped; ``--space``);
* :mod:`.recipes` — how a trial's values become a recipe config, and the retrain command;
* :mod:`.objective` — one trial: train, report per-epoch numbers to the pruner, score;
* :mod:`.study` — storage (SQLite, PostgreSQL), creating a study once, the stored
  settings, samplers (TPE, GP, CMA-ES, NSGA-II, random), pruners, the worker loop with
  heartbeats and retries of dead workers' trials;
* :mod:`.parallel` — ``mpiexec`` worlds split into groups, one data-parallel trial per group;
* :mod:`.worker` — ``jetlab hpo run`` as a function; :mod:`.report` — ``jetlab hpo report``.
"""
