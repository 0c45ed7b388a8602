"""Shape checks at the building blocks' boundaries: an input of the wrong rank or size, which
would otherwise broadcast into a wrong result, raises (chex's AssertionError, or a ValueError
naming the shapes)."""

import jax
import jax.numpy as jnp
import pytest

from purembrl import buffer, classifier, dynamics, successor, value

s = jnp.float32(1.0)        # a scalar
v2, v3 = jnp.ones(2), jnp.ones(3)
m23 = jnp.ones((2, 3))
no = jnp.bool_(False)

WRONG = [
    # value.py: per-transition targets and losses
    ("sac_target: next_q as a scalar", lambda: value.sac_target(s, no, s, s, s, s)),
    ("sac_target: a batched reward", lambda: value.sac_target(v2, no, s, v2, s, s)),
    ("sac_critic_loss: a batch of targets", lambda: value.sac_critic_loss(v2, v2)),
    ("sac_actor_loss: q [B, critics]", lambda: value.sac_actor_loss(m23, s, s)),
    ("sac_temperature_loss: a batch of log-probs",
     lambda: value.sac_temperature_loss(s, v2, s)),
    ("q_learning_target: next_q as a scalar", lambda: value.q_learning_target(s, no, s, s)),
    ("double_q_target: online and target of other sizes",
     lambda: value.double_q_target(s, no, s, v2, v3)),
    ("expected_target: rewards and next values of other sizes",
     lambda: value.expected_target(v2, jnp.zeros(2, bool), s, v3)),
    ("mbve_targets: terminations of another length",
     lambda: value.mbve_targets(v3, jnp.zeros(2, bool), s, s)),
    ("naf_matrix: wrong number of entries", lambda: value.naf_matrix(v2, 2)),
    ("naf_q: action and mu of other sizes",
     lambda: value.naf_q(s, v2, jnp.ones(3), v3)),
    ("state_value_target: a batched next value",
     lambda: value.state_value_target(s, no, s, v2)),
    # classifier.py
    ("mc_classifier_loss: a batched positive", lambda: classifier.mc_classifier_loss(v2, v3)),
    ("td_classifier_loss: a batched logit",
     lambda: classifier.td_classifier_loss(v2, s, s, 0.9)),
    ("infonce_loss: a non-square logit matrix", lambda: classifier.infonce_loss(m23)),
    # successor.py
    ("sf_target: phi and next psi of other sizes",
     lambda: successor.sf_target(v2, v3, no, s)),
    ("sf_td_loss: psi and phi of other sizes",
     lambda: successor.sf_td_loss(v2, v3, v3, no, s)),
    ("fit_reward_weights: rewards of another length",
     lambda: successor.fit_reward_weights(m23, v3)),
    ("q_from_sf: psi and w of other feature sizes",
     lambda: successor.q_from_sf(m23, v2, 0.9)),
    ("gpi_q: psis without the policy axis", lambda: successor.gpi_q(m23, v3)),
    ("gpi_action: a validity mask of another length",
     lambda: successor.gpi_action(jnp.ones((2, 4, 3)), v3, jnp.ones(3, bool))),
    # dynamics.py
    ("gaussian_nll: mean and target of other shapes",
     lambda: dynamics.gaussian_nll(m23, m23, v3)),
]


@pytest.mark.parametrize("call", [c for _, c in WRONG], ids=[n for n, _ in WRONG])
def test_wrong_shapes_raise(call):
    with pytest.raises((AssertionError, ValueError)):
        call()


def test_buffer_refuses_items_of_another_shape_and_masks_of_another_length():
    state = buffer.init({"x": jnp.zeros(3)}, 8)
    with pytest.raises(ValueError, match="does not match"):
        buffer.add(state, {"x": jnp.zeros((4, 2))})
    with pytest.raises(AssertionError):
        buffer.add(state, {"x": jnp.zeros((4, 3))}, mask=jnp.ones(5, bool))
    with pytest.raises(AssertionError):  # another pytree structure
        buffer.add(state, {"y": jnp.zeros((4, 3))})


def test_model_refuses_observations_of_another_size():
    config = dynamics.EnsembleConfig(num_members=2, num_elites=1, hidden_sizes=(8,))
    model = dynamics.init(jax.random.key(0), config, obs_dim=3, action_dim=1)
    with pytest.raises(AssertionError):
        dynamics.predict(model, config, jnp.ones((5, 4)), jnp.ones((5, 1)))
    with pytest.raises(AssertionError):
        dynamics.predict(model, config, jnp.ones(3), jnp.ones(1))  # an unbatched observation
