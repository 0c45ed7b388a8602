"""Probabilistic ensemble dynamics model, fitted and sampled inside jit (MBPO's model).

Janner, Fu, Zhang & Levine 2019 (MBPO), Appendix C, after Chua, Calandra, McAllister & Levine
2018 (PETS), Section 4 and Appendix A.1:

* E members (default 7), each an MLP (default 4 x 200, swish) that outputs a diagonal Gaussian
  over the targets ``[reward, next_obs - obs]`` (reward dropped when ``learn_reward=False``) and,
  when ``learn_termination``, one Bernoulli logit for termination.
* The log-variance is softly bounded between learned bounds (PETS, Appendix A.1)::

      logvar = max_logvar - softplus(max_logvar - raw)
      logvar = min_logvar + softplus(logvar - min_logvar)

  with ``logvar_penalty * (sum(max_logvar) - sum(min_logvar))`` added to the loss, and an L2
  penalty ``weight_decay[l] * ||W_l||^2 / 2`` on each layer's kernel (MBPO's decays).
* Inputs ``[obs, action]`` and targets are standardised by the statistics of the training data,
  recomputed at every ``fit``; a near-constant feature gets scale 1, never a division by ~0.

``fit`` trains on the filled part of a replay buffer whose size grows during training (masks,
no recompilation): a random ``holdout_ratio`` of the rows (at most ``max_holdout``) is held out;
each member trains on its own bootstrap resample of the rest, in minibatches drawn from it;
after each epoch (one pass worth of minibatches) the holdout MSE of each member is compared with
its best so far, a member that improved by more than ``improvement_threshold`` (1%) keeps a
snapshot of its parameters, and training stops when no member has improved for ``patience``
epochs (or after ``max_epochs``). Each member ends at its best snapshot; the ``num_elites``
members with the lowest holdout MSE are the elites.

Units: ``predict`` returns mean and log-variance of the targets in their original units, i.e.
of ``[reward, next_obs - obs]`` (``[next_obs - obs]`` without a learned reward).
``sample_step`` returns ``next_obs`` itself.

Actions are float vectors ``[action_dim]``; integer (discrete) actions stored in a buffer are
one-hot encoded to ``action_dim`` by ``model_inputs`` (see ``one_hot_actions``).
"""

from purembrl.dynamics.fitting import (
    VAL_CHUNK,
    FitCarry,
    FitData,
    bootstrap_rows,
    elite_members,
    fit,
    fit_data,
    fit_epoch,
    fit_start,
    holdout_mse,
    sgd_epoch,
    steps_per_epoch,
)
from purembrl.dynamics.model import (
    EnsembleConfig,
    EnsembleState,
    Normalizer,
    bound_logvar,
    check_config,
    gaussian_nll,
    init,
    layer_decays,
    make_model_step,
    model_inputs,
    model_targets,
    network,
    one_hot_actions,
    predict,
    predict_full,
    raw_outputs,
    sample_step,
    train_step,
)

__all__ = [
    "VAL_CHUNK", "EnsembleConfig", "EnsembleState", "FitCarry", "FitData", "Normalizer",
    "bootstrap_rows", "bound_logvar", "check_config", "elite_members", "fit", "fit_data",
    "fit_epoch", "fit_start",
    "gaussian_nll", "holdout_mse", "init", "layer_decays", "make_model_step", "model_inputs",
    "model_targets", "network", "one_hot_actions", "predict", "predict_full",
    "raw_outputs", "sample_step", "sgd_epoch", "steps_per_epoch", "train_step",
]
