"""What the pure policy engine (``domain.policy``) needs, read from storage: a run's policy
context and its spending caps. Used by the policy services and by every executor alike."""
