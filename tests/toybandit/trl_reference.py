"""TRL's own loss code on real (tiny, random) transformers models: the one place tests touch TRL.

``DPOWorld`` and ``KTOWorld`` hold a real TRL trainer, one collated batch, and the per-token
log-probabilities of that batch computed here independently of TRL (log-softmax in float64,
gather, mask). ``trl_dpo_loss`` / ``trl_kto_loss`` run the trainer's loss method with the given
config; ``trl_cpo_loss`` / ``trl_orpo_loss`` call TRL's experimental loss methods, which take
log-probabilities directly, with only the config attributes they read.

TRL's private API is called in one place only, :func:`trainer_loss` (``_compute_loss``, and the
loss settings a trainer copies from its config); every test that needs a trainer's loss goes
through it, so a TRL refactor fails there, by name. The ``lm`` extra bounds trl to the minor
version this was checked against.
"""

from __future__ import annotations

import types
from typing import NamedTuple

import torch

WORDS = ["<pad>", "<eos>", "a", "b", "c", "d", "e"]


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def _models(seed: int = 0):
    from tokenmdp.lm import tiny_gpt2

    g = torch.Generator().manual_seed(seed)  # one stream: the two models differ
    size = {"positions": 16, "width": 16, "layers": 1}
    # initializer_range 0.2: log-ratios of O(1), beyond the near-linear regime
    return tuple(
        tiny_gpt2(len(WORDS), generator=g, initializer_range=0.2, **size) for _ in range(2)
    )


def token_logps(model, input_ids, attention_mask, completion_mask):
    """Per-token log π of each next token and log Σ_v π(v)², float64, [B, T − 1], 0 off the mask."""
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    logp_all = torch.log_softmax(logits.double(), -1)
    logp = logp_all.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    log_sum_sq = torch.logsumexp(2 * logp_all, -1)
    mask = completion_mask[:, 1:].double()
    return logp * mask, log_sum_sq * mask, mask


class DPOWorld(NamedTuple):
    trainer: object
    batch: dict
    logps: torch.Tensor  # policy per-token log-probs [2n, T]
    ref_logps: torch.Tensor
    log_sum_sq: torch.Tensor  # policy log Σ_v π(v)² [2n, T]
    mask: torch.Tensor  # shifted completion mask [2n, T]


DPO_ROWS = {
    "prompt": ["a b", "c", "d e a", "b", "e e", "a"],
    "chosen": [" c d", " e", " b", " a a c d", " b", " c c c"],
    "rejected": [" d", " a b c", " c c", " e", " d a", " e"],
}


def dpo_world(output_dir: str) -> DPOWorld:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    model, ref_model = _models()
    n = len(DPO_ROWS["prompt"])
    args = DPOConfig(
        output_dir=output_dir,
        beta=0.1,
        report_to=[],
        use_cpu=True,
        per_device_train_batch_size=n,
        max_length=16,
        disable_tqdm=True,
        use_weighting=True,
    )  # so that the model returns log Σ π² for WPO
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=Dataset.from_dict(DPO_ROWS),
        processing_class=_tokenizer(),
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(n)])
    ids, att, comp = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    logps, log_sum_sq, mask = token_logps(model, ids, att, comp)
    ref_logps, _, _ = token_logps(ref_model, ids, att, comp)
    return DPOWorld(trainer, batch, logps, ref_logps, log_sum_sq, mask)


def trl_dpo_loss(
    world: DPOWorld,
    loss_type,
    *,
    beta=0.1,
    label_smoothing=0.0,
    loss_weights=None,
    f_divergence_type="reverse_kl",
    f_alpha_divergence_coef=0.5,
    ld_alpha=None,
    use_weighting=False,
    discopop_tau=0.05,
) -> float:
    """``DPOTrainer._compute_loss`` with the given ``DPOConfig`` loss settings (float32)."""
    loss_types = [loss_type] if isinstance(loss_type, str) else list(loss_type)
    world.trainer.args.discopop_tau = discopop_tau
    return trainer_loss(
        world.trainer,
        world.batch,
        loss_types=loss_types,
        loss_weights=loss_weights or [1.0] * len(loss_types),
        beta=beta,
        label_smoothing=label_smoothing,
        f_divergence_type=f_divergence_type,
        f_alpha_divergence_coef=f_alpha_divergence_coef,
        ld_alpha=ld_alpha,
        use_weighting=use_weighting,
    )


def trainer_loss(trainer, batch, **loss_settings) -> float:
    """The trainer's loss on a collated ``batch`` (no gradient), with ``loss_settings`` set first.

    The one call of TRL's private API in the tests: ``trainer._compute_loss(trainer.model, batch,
    return_outputs=False)`` of ``DPOTrainer`` and ``KTOTrainer`` (TRL 1.16). Each setting is a
    loss attribute the trainer copied from its config in ``__init__`` (``beta``, ``loss_types``,
    ...) and must exist already: a TRL that renamed one would otherwise keep its old value in
    force silently.
    """
    for name, value in loss_settings.items():
        if not hasattr(trainer, name):
            raise AttributeError(
                f"{type(trainer).__name__} has no attribute {name!r}: TRL's trainer internals "
                "changed (see the trl bound of the lm extra in pyproject.toml)"
            )
        setattr(trainer, name, value)
    with torch.no_grad():
        return trainer._compute_loss(trainer.model, batch, False).item()


class KTOWorld(NamedTuple):
    trainer: object
    batch: dict
    logratios: torch.Tensor  # q of each completion [B]
    kl_logratios: torch.Tensor  # q of the mismatched KL completions [B]
    label: torch.Tensor  # bool [B]


KTO_ROWS = {
    "prompt": ["a b", "c", "d e a", "b", "e e", "a"],
    "completion": [" c d", " e", " b", " a a c d", " b", " c c c"],
    "label": [True, False, True, True, False, False],
}


def kto_world(output_dir: str) -> KTOWorld:
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    model, ref_model = _models(4)  # a seed whose KL estimate is > 0 (z0 not clamped)
    n = len(KTO_ROWS["prompt"])
    args = KTOConfig(
        output_dir=output_dir,
        beta=0.1,
        report_to=[],
        use_cpu=True,
        per_device_train_batch_size=n,
        max_length=16,
        disable_tqdm=True,
    )
    trainer = KTOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=Dataset.from_dict(KTO_ROWS),
        processing_class=_tokenizer(),
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(n)])

    def seq_logratios(ids, att, comp):
        lp, _, _ = token_logps(model, ids, att, comp)
        lr, _, _ = token_logps(ref_model, ids, att, comp)
        return (lp - lr).sum(-1)

    q = seq_logratios(batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    q_kl = seq_logratios(
        batch["KL_input_ids"], batch["KL_attention_mask"], batch["KL_completion_mask"]
    )
    return KTOWorld(trainer, batch, q, q_kl, torch.as_tensor(batch["label"], dtype=torch.bool))


def trl_kto_loss(
    world: KTOWorld, *, loss_type="kto", beta=0.1, desirable_weight=1.0, undesirable_weight=1.0
) -> float:
    return trainer_loss(
        world.trainer,
        world.batch,
        loss_type=loss_type,
        beta=beta,
        desirable_weight=desirable_weight,
        undesirable_weight=undesirable_weight,
    )


def _config(**attrs):
    return types.SimpleNamespace(accelerator=types.SimpleNamespace(device="cpu"), **attrs)


def trl_cpo_loss(
    chosen_logps,
    rejected_logps,
    *,
    loss_type,
    beta,
    label_smoothing=0.0,
    simpo_gamma=0.5,
    alpha=0.0,
) -> torch.Tensor:
    """``CPOTrainer.cpo_loss``: per-pair losses on given policy log-probs."""
    from trl.experimental.cpo import CPOTrainer

    cfg = _config(
        loss_type=loss_type,
        beta=beta,
        label_smoothing=label_smoothing,
        simpo_gamma=simpo_gamma,
        alpha=alpha,
    )
    return CPOTrainer.cpo_loss(cfg, chosen_logps, rejected_logps)[0]


def trl_orpo_loss(chosen_logps, rejected_logps, *, beta) -> torch.Tensor:
    """``ORPOTrainer.odds_ratio_loss``: β log σ(log odds ratio), which the trainer subtracts."""
    from trl.experimental.orpo import ORPOTrainer

    return ORPOTrainer.odds_ratio_loss(_config(beta=beta), chosen_logps, rejected_logps)[0]
