"""Cloud providers: each module grants and revokes one kind of target, nothing else."""
