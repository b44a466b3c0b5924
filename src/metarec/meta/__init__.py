"""Meta-training: supervised pre-training, meta-RL and first-order MAML."""
