"""Which DQN settings learn CartPole-v1 (or Acrobot-v1) in every seed within 50k steps and stay?

    python benchmarks/dqn_settings.py [--env CartPole-v1] [--settings preset,sb3,...]
        [--seeds 8] [--seed 0] [--steps 50000] [--eval-every 2500]

Issue 20's first goal: every seed reaches the goal (475 on CartPole, -100 on Acrobot) and
holds it, the median of its last three evaluations at or above the goal, within 50,000 env
steps. Each named setting overrides the env's preset (``dqn.Config.for_env``). They run under
one ``jit(vmap)`` over ``--seeds`` seeds each, evaluating every 2,500 steps on 10 greedy
episodes. The script prints, per setting, the steps at which each seed first reaches the goal,
each seed's median over its last three evaluations, how many seeds hold the goal, and the
median curve. A setting chosen on some keys must then be checked on others (``--seed``).

The settings are where each comes from:

* ``preset``: the library's CartPole preset (since 2026-12-03 the same as
  ``preset_n10_lrdecay``); ``onestep``: the preset before that date (one-step targets, a
  constant rate), which the ``preset_*`` variants below change and which RESULTS.md's rows
  named ``preset`` from before that date measured.
* ``sb3``: Stable-Baselines3 zoo's CartPole DQN (256 x 256 ReLU, Adam 2.3e-3, batch 64,
  buffer 100k, 128 updates every 256 env steps, target copied after every burst, epsilon
  1 -> 0.04 over 8k steps, plain Q targets, Huber, gradient norm 10).
* ``sb3_ddqn`` and its variants: the same with double-Q targets, and one change each:
  ``_lr1e3`` (Adam 1e-3), ``_t4`` (32 updates every 64 steps), ``_g98`` (gamma 0.98),
  ``_tp512`` (the target copied every 4 bursts), ``_b256`` (batch 256, Adam 1e-3).
* ``_lrdecay`` (after ``sb3``, ``sb3_ddqn`` or ``preset``, i.e. ``onestep``): the learning
  rate decayed linearly to zero over the run's updates (``DQNConfig.lr_decay_updates``).
* ``_n3``, ``_n5``, ``_n10``, ``_n20`` (after ``preset`` or ``sb3_ddqn``): n-step returns
  (``dqn.Config.n_step``), the drift of the cart credited n steps per backup instead of one;
  ``preset_n3_lrdecay``, ``preset_n5_lrdecay``, ``preset_n10_lrdecay``,
  ``preset_n20_lrdecay``, ``sb3_ddqn_n3_lrdecay``: with the learning-rate
  decay.
* ``rejax_like``: rejax's CartPole DQN without the dueling head (64 x 64 swish, Adam 1e-3,
  batch 100, buffer 50k, 5k random steps, Polyak 0.02, one update every 2 env steps, epsilon
  over 25k steps).

Settings named ``mbpo_*`` run MBPO-DQN (``mbpo.Config.for_env``) instead, to separate the
learner from the model (issue 20's diagnosis; use ``--steps 10000 --eval-every 500``). Each
is relative to MBPO's one-step CartPole preset as it was until 2026-12-04 (``MBPO_ONESTEP``
restores it: one-step targets, 100 rollouts per env step on the schedule (1, 10, 1, 5),
Adam's constant rate of the preset before 2026-12-07, ``MBPO_LEARNER``, and rollouts that act
as the real steps, the preset's before 2026-12-08), so the rows of RESULTS.md stay
reproducible; ``mbpo_default`` is the preset as it is now (the same as
``mbpo_default_settled`` since 2026-12-08):

* ``mbpo_true_acrobot`` (for ``--env Acrobot-v1``; its MBPO preset is ``mbpo_acrobot_known_proj``
  since 2026-12-05, and these settings set every field that differs from it): the CartPole
  preset's learner, minibatches, warm-up and multi-step rollouts, with the true dynamics;
  ``mbpo_acrobot``: the same with the learned ensemble (reward and termination learned);
  ``mbpo_acrobot_h5``: its model branches 5 steps long instead of 10 (5-step returns along
  them); ``mbpo_acrobot_r05``: half of each minibatch real (``real_ratio=0.5`` instead of
  0.1), so that a learned model's errors weigh half as much in the targets;
  ``mbpo_acrobot_known``: the reward and the termination known (``known.acrobot_reward``,
  ``known.acrobot_terminated``: MBPO's practice), only the dynamics learned (the three
  settings before learn both); ``mbpo_acrobot_known_proj``: also the predicted observations
  projected back onto Acrobot's (``project_obs``: cos/sin pairs on the unit circle, speeds
  clipped), before the known functions read them.
* ``mbpo_preset``: MBPO's one-step CartPole preset (learned ensemble, known termination and
  reward).
* ``mbpo_true``: the same with the env's true dynamics as the model (``true_dynamics``).
* ``mbpo_true_tp1000``: true dynamics, the target copied every 1000 updates (200 env steps at
  G = 5) instead of 200 (40 env steps).
* ``mbpo_true_real``: true dynamics, but every minibatch real (``real_ratio=1``): the
  preset's learner on the same G = 5 updates per step without model data.
* ``mbpo_true_eps30``: true dynamics, epsilon ending at 0.3 instead of 0.05 (the rollouts act
  with the same epsilon-greedy policy, so their non-greedy actions grow six-fold).
* ``mbpo_true_r50``: true dynamics, half of each minibatch real (``real_ratio=0.5``).
* ``mbpo_true_g95``: true dynamics, gamma 0.95 (a horizon of about 20 steps).
* ``mbpo_true_tp50``: true dynamics, the target copied every 50 updates (10 env steps): four
  times as many Bellman backups in the same run.
* ``..._n10``: the real part of each minibatch holds 10-step returns (``mbpo.Config.n_step``):
  ``mbpo_preset_n10``, ``mbpo_true_n10``, ``mbpo_true_real_n10`` (every minibatch real),
  ``mbpo_preset_r50_n10`` (half of each minibatch real).
* ``..._m5``, ``..._m10_h10``: the model part holds returns of up to 5 (10) steps along each
  branched rollout (``mbpo.Config.model_n_step``, MBVE-style); ``_h10``: every rollout 10 steps
  long from the first epoch (``rollout_schedule=(1, 1, 10, 10)``); ``_lrdecay``: Adam's rate
  decayed to zero over the run's 47,500 updates; ``_r20``: 20 rollouts per env step instead
  of 100 (a fifth of the rollout work).
* ``mbpo_true_default``: the preset as it is now (``mbpo_default``) with the true dynamics;
  ``_settled``: its branched rollouts act with the epsilon the schedule ends at (0.05) instead
  of the real steps' current one (``mbpo.Config.rollout_policy="settled"``); ``_greedy``: they
  act greedily (``"greedy"``); ``mbpo_default_settled``, ``mbpo_default_greedy``: the same
  with the learned model (issue 20, session 56). With the true dynamics and settled rollouts
  (session 57): ``mbpo_true_settled_eps2500`` (epsilon 1 -> 0.05 over 2,500 steps instead of
  5,000), ``_g10`` (G = 10 updates per env step instead of 5, Adam's rate decayed over twice the
  updates, so again to zero at 10k env steps), ``_tp100`` (the target copied
  every 100 updates instead of 200), ``_r40`` (40 branched rollouts per env step instead of
  20); ``mbpo_default_settled_eps2500``: the preset (settled rollouts) with epsilon over 2,500
  steps, with the learned model.

Settings named ``dyna_*`` run deep Dyna-DQN (``dyna.Config.for_env``: T = 1, K = 5 model draws
of s' per (s, a), G = 2 updates per step): ``dyna_preset``, ``dyna_true`` (the true dynamics
as the model), ``_n10`` (10-step heads: the real return of up to 9 steps, then the model's
expectation over the last step's s', ``dyna.Config.n_step``), ``_g5`` (G = 5 updates per step),
``_lrdecay`` (Adam's rate decayed to zero over the run's updates), ``_n20`` (20-step heads),
``_b256`` (minibatches of 256), ``_eps2500`` (epsilon 1 -> 0.05 over 2,500 steps instead of
5,000), ``_tp500``, ``_tp1000`` (the target copied every 500 or 1000 updates instead of 200),
``_all`` (every update also regresses Q(s, a') for the action not taken, on the model's
one-step expectation: ``dyna.Config.all_actions``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine, run  # noqa: E402

from purembrl.algos import dqn, dyna, mbpo  # noqa: E402
from purembrl.learners import DQNConfig  # noqa: E402

GOALS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}


def _sb3(fields=None, **learner) -> dict:
    base = dict(hidden_sizes=(256, 256), learning_rate=2.3e-3, double_q=True,
                target_update="periodic", target_period=128, eps_end=0.04, eps_decay_steps=8000)
    return {"buffer_size": 100_000, "batch_size": 64, "initial_random_steps": 1000,
            "train_every": 256, "updates_per_step": 128, "n_step": 1,
            "learner": DQNConfig(**{**base, **learner}), **(fields or {})}


# The CartPole preset before 2026-12-03 (one-step targets, a constant rate): what the rows named
# ``preset`` in RESULTS.md measured before that date, and what the ``preset_*`` variants change.
ONE_STEP = DQNConfig(hidden_sizes=(128, 128), target_update="periodic", target_period=200,
                     eps_decay_steps=10_000)


def _one_step(n_step=1, **learner) -> dict:
    return {"n_step": n_step, "learner": dataclasses.replace(ONE_STEP, **learner)}


# MBPO's CartPole learner before 2026-12-07 (a constant rate; the preset's decays since)
MBPO_LEARNER = dataclasses.replace(mbpo.PRESETS["CartPole-v1"]["learner"], lr_decay_updates=0)

# MBPO's CartPole preset before 2026-12-04, the base of every mbpo_* setting below
MBPO_ONESTEP = {"n_step": 1, "model_n_step": 1, "rollouts_per_step": 100,
                "rollout_schedule": (1, 10, 1, 5), "learner": MBPO_LEARNER,
                "rollout_policy": "behaviour"}
# the preset of 2026-12-07 (rollouts acting as the real steps, from MBPO_ONESTEP)
MBPO_PRESET = {name: mbpo.PRESETS["CartPole-v1"][name] for name in
               ("n_step", "model_n_step", "rollouts_per_step", "rollout_schedule", "learner")}
# the preset as it is now (rollouts at the end of epsilon's schedule), and its learner changed
SETTLED = {**MBPO_PRESET, "rollout_policy": "settled"}


def _preset_learner(**fields):
    return dataclasses.replace(MBPO_PRESET["learner"], **fields)


# The CartPole preset's learner, minibatches, warm-up and multi-step rollouts, with the reward
# and termination learned (the base of the mbpo_*acrobot settings; since 2026-12-05 Acrobot's
# MBPO preset is mbpo_acrobot_known_proj, so the known functions are switched off explicitly)
MBPO_ACROBOT = {"n_step": 10, "model_n_step": 10, "rollout_schedule": (1, 1, 10, 10),
                "rollouts_per_step": 20, "known_reward": False, "known_termination": False,
                "project_obs": False,
                **{k: mbpo.PRESETS["CartPole-v1"][k] for k in (
                    "batch_size", "updates_per_step", "real_ratio", "rollout_freq",
                    "initial_random_steps")}, "learner": MBPO_LEARNER}

SETTINGS = {
    "preset": {},
    "onestep": _one_step(),
    "sb3": _sb3(double_q=False),
    "sb3_ddqn": _sb3(),
    "sb3_ddqn_lr1e3": _sb3(learning_rate=1e-3),
    "sb3_ddqn_t4": _sb3({"train_every": 64, "updates_per_step": 32}, learning_rate=1e-3),
    "sb3_ddqn_g98": _sb3(gamma=0.98),
    "sb3_ddqn_tp512": _sb3(target_period=512),
    "sb3_ddqn_b256": _sb3({"batch_size": 256}, learning_rate=1e-3),
    "sb3_lrdecay": _sb3(double_q=False, lr_decay_updates=24_500),
    "sb3_ddqn_lrdecay": _sb3(lr_decay_updates=24_500),
    "sb3_ddqn_g98_lrdecay": _sb3(gamma=0.98, lr_decay_updates=24_500),
    "preset_lrdecay": _one_step(lr_decay_updates=49_000),
    "rejax_like": dict(buffer_size=50_000, batch_size=100, initial_random_steps=5000,
                       train_every=2, updates_per_step=1, n_step=1,
                       learner=DQNConfig(hidden_sizes=(64, 64), activation="swish",
                                         learning_rate=1e-3, double_q=True,
                                         target_update="polyak", tau=0.02, eps_end=0.05,
                                         eps_decay_steps=25_000)),
    "preset_n3": _one_step(3),
    "preset_n5": _one_step(5),
    "preset_n10": _one_step(10),
    "preset_n20": _one_step(20),
    "preset_n3_lrdecay": _one_step(3, lr_decay_updates=49_000),
    "preset_n5_lrdecay": _one_step(5, lr_decay_updates=49_000),
    "preset_n10_lrdecay": _one_step(10, lr_decay_updates=49_000),
    "preset_n20_lrdecay": _one_step(20, lr_decay_updates=49_000),
    "sb3_ddqn_n3": _sb3({"n_step": 3}),
    "sb3_ddqn_n3_lrdecay": _sb3({"n_step": 3}, lr_decay_updates=24_500),
    "sb3_ddqn_n5": _sb3({"n_step": 5}),
    "mbpo_preset": {},
    "mbpo_default": None,  # the library's preset, MBPO_ONESTEP not applied
    "mbpo_true": {"true_dynamics": True},
    "mbpo_true_tp1000": {"true_dynamics": True, "learner": dataclasses.replace(
        MBPO_LEARNER, target_period=1000)},
    "mbpo_true_real": {"true_dynamics": True, "real_ratio": 1.0},
    "mbpo_true_eps30": {"true_dynamics": True, "learner": dataclasses.replace(
        MBPO_LEARNER, eps_end=0.3)},
    "mbpo_true_r50": {"true_dynamics": True, "real_ratio": 0.5},
    "mbpo_true_tp50": {"true_dynamics": True, "learner": dataclasses.replace(
        MBPO_LEARNER, target_period=50)},
    "mbpo_true_g95": {"true_dynamics": True, "learner": dataclasses.replace(
        MBPO_LEARNER, gamma=0.95)},
    "mbpo_preset_n10": {"n_step": 10},
    "mbpo_true_n10": {"true_dynamics": True, "n_step": 10},
    "mbpo_true_real_n10": {"true_dynamics": True, "real_ratio": 1.0, "n_step": 10},
    "mbpo_preset_r50_n10": {"real_ratio": 0.5, "n_step": 10},
    "mbpo_true_n10_m5": {"true_dynamics": True, "n_step": 10, "model_n_step": 5},
    "mbpo_true_n10_m10_h10": {"true_dynamics": True, "n_step": 10, "model_n_step": 10,
                              "rollout_schedule": (1, 1, 10, 10)},
    "mbpo_preset_n10_m10_h10": {"n_step": 10, "model_n_step": 10,
                                "rollout_schedule": (1, 1, 10, 10)},
    "mbpo_preset_n10_m10_h10_r20": {"n_step": 10, "model_n_step": 10,
                                    "rollout_schedule": (1, 1, 10, 10), "rollouts_per_step": 20},
    "mbpo_true_n10_m10_h10_r20": {"true_dynamics": True, "n_step": 10, "model_n_step": 10,
                                  "rollout_schedule": (1, 1, 10, 10), "rollouts_per_step": 20},
    "mbpo_preset_n10_m10_h10_r20_lrdecay": {
        "n_step": 10, "model_n_step": 10, "rollout_schedule": (1, 1, 10, 10),
        "rollouts_per_step": 20, "learner": dataclasses.replace(
            MBPO_LEARNER, lr_decay_updates=47_500)},
    "mbpo_true_n10_m10_h10_lrdecay": {
        "true_dynamics": True, "n_step": 10, "model_n_step": 10,
        "rollout_schedule": (1, 1, 10, 10), "learner": dataclasses.replace(
            MBPO_LEARNER, lr_decay_updates=47_500)},
    "mbpo_true_default": {**MBPO_PRESET, "true_dynamics": True},
    "mbpo_true_default_settled": {**MBPO_PRESET, "true_dynamics": True,
                                  "rollout_policy": "settled"},
    "mbpo_true_default_greedy": {**MBPO_PRESET, "true_dynamics": True,
                                 "rollout_policy": "greedy"},
    "mbpo_default_settled": {**MBPO_PRESET, "rollout_policy": "settled"},
    "mbpo_default_greedy": {**MBPO_PRESET, "rollout_policy": "greedy"},
    "mbpo_true_settled_eps2500": {**SETTLED, "true_dynamics": True,
                                  "learner": _preset_learner(eps_decay_steps=2500)},
    "mbpo_true_settled_g10": {**SETTLED, "true_dynamics": True, "updates_per_step": 10,
                              "learner": _preset_learner(lr_decay_updates=95_000)},
    "mbpo_true_settled_tp100": {**SETTLED, "true_dynamics": True,
                                "learner": _preset_learner(target_period=100)},
    "mbpo_true_settled_r40": {**SETTLED, "true_dynamics": True, "rollouts_per_step": 40},
    "mbpo_default_settled_eps2500": {**SETTLED, "learner": _preset_learner(eps_decay_steps=2500)},
    "mbpo_acrobot": MBPO_ACROBOT,
    "mbpo_true_acrobot": {**MBPO_ACROBOT, "true_dynamics": True},
    "mbpo_acrobot_h5": {**MBPO_ACROBOT, "rollout_schedule": (1, 1, 5, 5)},
    "mbpo_acrobot_r05": {**MBPO_ACROBOT, "real_ratio": 0.5},
    "mbpo_acrobot_known": {**MBPO_ACROBOT, "known_reward": True, "known_termination": True},
    "mbpo_acrobot_known_proj": {**MBPO_ACROBOT, "known_reward": True, "known_termination": True,
                                "project_obs": True},
    "dyna_preset": {},
    "dyna_true": {"true_dynamics": True},
    "dyna_n10": {"n_step": 10},
    "dyna_true_n10": {"true_dynamics": True, "n_step": 10},
    "dyna_n10_g5": {"n_step": 10, "updates_per_step": 5},
    "dyna_true_n10_g5": {"true_dynamics": True, "n_step": 10, "updates_per_step": 5},
    "dyna_true_n10_lrdecay": {"true_dynamics": True, "n_step": 10, "learner": dataclasses.replace(
        dyna.PRESETS["CartPole-v1"]["learner"], lr_decay_updates=19_000)},
    "dyna_n10_lrdecay": {"n_step": 10, "learner": dataclasses.replace(
        dyna.PRESETS["CartPole-v1"]["learner"], lr_decay_updates=19_000)},
    "dyna_n10_g5_lrdecay": {"n_step": 10, "updates_per_step": 5, "learner": dataclasses.replace(
        dyna.PRESETS["CartPole-v1"]["learner"], lr_decay_updates=47_500)},
    "dyna_true_n20": {"true_dynamics": True, "n_step": 20},
    "dyna_true_n10_b256": {"true_dynamics": True, "n_step": 10, "batch_size": 256},
    "dyna_true_n10_eps2500": {"true_dynamics": True, "n_step": 10, "learner": dataclasses.replace(
        dyna.PRESETS["CartPole-v1"]["learner"], eps_decay_steps=2500)},
    "dyna_true_n10_tp500": {"true_dynamics": True, "n_step": 10, "learner": dataclasses.replace(
        dyna.PRESETS["CartPole-v1"]["learner"], target_period=500)},
    "dyna_true_n10_tp1000": {"true_dynamics": True, "n_step": 10, "learner": dataclasses.replace(
        dyna.PRESETS["CartPole-v1"]["learner"], target_period=1000)},
    "dyna_true_all": {"true_dynamics": True, "all_actions": True},
    "dyna_true_n10_all": {"true_dynamics": True, "n_step": 10, "all_actions": True},
    "dyna_n10_all": {"n_step": 10, "all_actions": True},
    # the DQN preset with Polyak-averaged targets (tau 0.005) instead of a copy every 200
    # updates, and with epsilon ending at 0.01 instead of 0.05 (issue 20, session 50)
    "preset_polyak": {"learner": dataclasses.replace(
        dqn.PRESETS["CartPole-v1"]["learner"], target_update="polyak", tau=0.005)},
    "preset_eps01": {"learner": dataclasses.replace(
        dqn.PRESETS["CartPole-v1"]["learner"], eps_end=0.01)},
    "dyna_n10_tp500": {"n_step": 10, "learner": dataclasses.replace(
        dyna.PRESETS["CartPole-v1"]["learner"], target_period=500)},
}


def summary(returns: np.ndarray, steps: np.ndarray, goal: float) -> dict:
    """Per seed: the first evaluation step at or above ``goal`` (None if never) and the median
    of the last three evaluations; and how many seeds hold the goal."""
    first = [int(steps[np.argmax(r >= goal)]) if (r >= goal).any() else None for r in returns]
    last3 = np.median(returns[:, -3:], axis=1)
    return {"first": first, "last3": last3, "hold": int((last3 >= goal).sum())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1", choices=sorted(GOALS))
    parser.add_argument("--settings", default="preset,sb3,sb3_ddqn")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=2500)
    parser.add_argument("--part", default=None, metavar="I/N",
                        help="run only the I-th of N equal slices of the --seeds keys (e.g. 0/2 "
                             "and 1/2 on two cores: together the same keys as one run)")
    args = parser.parse_args(argv)
    part = None
    if args.part is not None:
        i, _, n = args.part.partition("/")
        if not (i.isdigit() and n.isdigit() and 0 <= int(i) < int(n) <= args.seeds
                and args.seeds % int(n) == 0):
            parser.error(f"--part {args.part!r}: expected I/N with 0 <= I < N and N dividing "
                         f"--seeds {args.seeds}")
        part = (int(i), int(n))
    names = args.settings.split(",")
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; known: {', '.join(SETTINGS)}")
    goal = GOALS[args.env]
    which = "" if part is None else f" (part {part[0]} of {part[1]}: seeds " \
        f"{part[0] * args.seeds // part[1]}-{(part[0] + 1) * args.seeds // part[1] - 1})"
    print(f"machine: {machine()}; {args.env}, {args.steps} steps, {args.seeds} seeds from "
          f"key {args.seed}{which}, goal {goal:g}")
    print("| setting | seeds holding the goal | first step at the goal, per seed | last-three "
          "median, per seed | seconds |")
    print("|---|---|---|---|---|")
    for name in names:
        module = {"mbpo": mbpo, "dyna": dyna}.get(name.split("_")[0], dqn)
        fields = ({} if SETTINGS[name] is None else
                  {**MBPO_ONESTEP, **SETTINGS[name]} if module is mbpo else SETTINGS[name])
        config = module.Config.for_env(env=args.env, total_steps=args.steps,
                                       eval_every=args.eval_every, eval_episodes=10, **fields)
        metrics, seconds = run(module, config, args.seeds, args.seed, part)
        out = summary(metrics["eval_return"], metrics["env_steps"][0], goal)
        first = ", ".join("never" if f is None else str(f) for f in out["first"])
        last3 = ", ".join(f"{v:.0f}" for v in out["last3"])
        print(f"| {name} | {out['hold']} of {len(out['first'])} | {first} | {last3} "
              f"| {seconds:.0f} |", flush=True)
        curve = np.median(metrics["eval_return"], axis=0)
        print(f"    median curve: {np.round(curve).astype(int).tolist()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
