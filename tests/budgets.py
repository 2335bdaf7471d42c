"""Run budgets shared by the test files (not a test module)."""

# The smallest riskq-train run that still logs, evaluates and checkpoints on every toy env.
TINY = [
    "t_max=300",
    "num_envs=4",
    "eval_episodes=4",
    "eval_interval=150",
    "log_interval=100",
    "algo.batch_size=4",
    "algo.buffer_size=64",
    "progress=false",
]

# A sweep run: the risk-ladder game, a few seconds per run even as a cluster job.
SWEEP = [
    "env=matrix",
    "t_max=48",
    "num_envs=8",
    "eval_episodes=8",
    "eval_interval=16",
    "log_interval=16",
    "algo.batch_size=8",
    "threads=1",
]
