"""Planning: the user's config read and validated, the run descriptions, the paper's facts,
which runs a study has, estimates, status and recorded runs. Never imports torch or the engine."""
