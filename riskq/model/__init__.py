"""The model: risk measures, quantiles, networks, mixers and the update that trains them.

This group imports nothing of riskq but ``riskq.config`` and ``riskq.errors`` (and the env
interface, ``envs.base``, for the episode batch); the run and analysis groups and the commands
build on it (``tests/test_structure.py``).

- ``risk``: risk measures psi; ``quantiles``: the tau grid and the quantile Huber loss;
  ``targets``: TD(lambda) and risk-greedy action selection.
- ``networks``: the recurrent quantile agent; ``mixers``: the mixer registry.
- ``buffer``: ``EpisodeBatch``, the one declaration of the episode fields; ``device``: the
  configured device, checked once.
- ``reference``: the update written plainly, top to bottom (``algo.update=reference``).
- ``learner``: the fast update (``algo.update=fast``), an optimisation of ``reference`` that
  the equivalence tests check against it.
- ``kernels`` and ``optim`` are speed machinery only: hand-written GRU and loss kernels, and
  RMSprop and Adam on one flat tensor. Only the fast path (``learner``, and the GRU paths of
  ``networks``) uses them; ``reference`` does not.
"""
