"""proofs_check's ``.lm`` claims: drawn from a real model's tree, and ``--model`` on an ordinary
float32 checkpoint (checked in float64, against a distinct reference)."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from proofs_check import REGISTRY, lm_claims, run_claim  # noqa: E402
from proofs_check.cli import main  # noqa: E402


@pytest.fixture
def restore_model():
    yield
    lm_claims.set_model(None)


def test_lm_claims_draw_real_model_trees(restore_model):
    """Each mirrored claim draws its instances from the model's tree, not the base claim's
    random tabular trees (a model tree uses the model's 64-token vocabulary)."""
    lm_claims.set_model(None)
    for base in lm_claims.MIRRORED:
        mirrored = REGISTRY[f"{base}.lm"]
        assert mirrored.draw is lm_claims.lm_tree_world, base
        world = mirrored.draw(torch.Generator().manual_seed(0))
        assert world.tree.vocab_size == 64


def test_a_float32_checkpoint_is_checked_in_float64_against_a_distinct_reference(
    tmp_path, capsys, restore_model
):
    model = lm_claims.tiny_model(seed=5).float()
    model.save_pretrained(tmp_path)
    source = lm_claims.set_model(str(tmp_path))
    assert "float32" in source and "float64" in source
    policy, ref = lm_claims.model(), lm_claims._reference()
    assert next(policy.parameters()).dtype == torch.float64 and ref is not policy
    ids = torch.randint(2, 64, (2, 8), generator=torch.Generator().manual_seed(0))
    from tokenmdp import lm

    assert (lm.token_logprobs(policy, ids) - lm.token_logprobs(ref, ids)).abs().max() > 1e-3
    for claim_id in ("rafailov2024.sec41.lm-text", "rafailov2024.eq5-7.bellman.lm"):
        result = run_claim(REGISTRY[claim_id], instances=3)
        assert result.ok, (claim_id, result)


def test_a_float32_checkpoint_left_in_float32_would_fail(tmp_path, restore_model):
    """Negative twin: the text claim at float64 tolerance on float32 weights does not hold."""
    lm_claims.tiny_model(seed=5).float().save_pretrained(tmp_path)
    lm_claims.set_model(str(tmp_path))
    lm_claims._STATE["model"] = lm_claims._STATE["model"].float()
    result = run_claim(REGISTRY["rafailov2024.sec41.lm-text"], instances=3)
    assert not result.ok


def test_a_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
    code = main(["--claim", "lm", "--model", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2
    assert "not a local checkpoint directory" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
