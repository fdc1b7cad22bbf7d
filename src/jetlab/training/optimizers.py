"""The optimizer and the learning-rate schedule a run's settings name
(:class:`~jetlab.training.settings.TrainSettings`).

Learning-rate schedules (:func:`make_scheduler`): ``plateau`` multiplies the lr by
``lr_factor`` after ``lr_patience`` epochs without a better validation number
(``ReduceLROnPlateau``), ``cosine`` anneals it to 0 over ``epochs`` (``CosineAnnealingLR``),
``none`` keeps it.
"""

from __future__ import annotations

import torch

from jetlab.training.settings import TrainSettings

__all__ = ["make_optimizer", "make_scheduler"]


def make_optimizer(config: TrainSettings, parameters, *, lr: float | None = None, weight_decay: float = 0.0,
                   betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` names over ``parameters`` (``lr`` defaults to ``config.lr``).

    Under ``--strategy gem`` its learning rate is ``config.gem_lr`` for every network: GEM
    takes no optimizer step, the optimizer only carries η (and the schedule's changes of it)."""
    lr = config.lr if lr is None else lr
    if config.strategy == "gem":
        lr = config.gem_lr
    if config.optimizer == "adadelta":
        return torch.optim.Adadelta(parameters, lr=lr, weight_decay=weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=config.momentum, weight_decay=weight_decay)
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, betas=betas)


def make_scheduler(config: TrainSettings, optimizer: torch.optim.Optimizer, mode: str = "min"):
    """The learning-rate scheduler ``config.schedule`` names for ``optimizer`` (None for none);
    ``mode`` says whether the monitored validation number should fall ("min") or rise ("max")."""
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=config.lr_factor,
                                                          patience=config.lr_patience)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return None
