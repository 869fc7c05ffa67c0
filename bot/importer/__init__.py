"""``jit-bot import``: read an existing estate and propose the handful of functional roles
that reproduce today's access (the role-mining core in ``mining``; readers beside it)."""
