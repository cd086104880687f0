"""proofs_check: the claim catalogue of the two source texts. Built in a later issue."""

__all__: list[str] = []
