"""TRL's own loss code on real (tiny, random) transformers models: the one place tests touch TRL.

``DPOWorld`` and ``KTOWorld`` hold a real TRL trainer, one collated batch, and the per-token
log-probabilities of that batch computed here independently of TRL (log-softmax in float64,
gather, mask). ``trl_dpo_loss`` / ``trl_kto_loss`` run the trainer's loss method with the given
config; ``trl_cpo_loss`` / ``trl_orpo_loss`` call TRL's experimental loss methods, which take
log-probabilities directly, with only the config attributes they read.
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
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(WORDS),
        n_positions=16,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
        initializer_range=0.2,
    )  # log-ratios of O(1): beyond the near-linear regime
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config).eval(), GPT2LMHeadModel(config).eval()


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
    t = world.trainer
    t.loss_types = [loss_type] if isinstance(loss_type, str) else list(loss_type)
    t.loss_weights = loss_weights or [1.0] * len(t.loss_types)
    t.beta, t.label_smoothing = beta, label_smoothing
    t.f_divergence_type, t.f_alpha_divergence_coef = f_divergence_type, f_alpha_divergence_coef
    t.ld_alpha, t.use_weighting = ld_alpha, use_weighting
    t.args.discopop_tau = discopop_tau
    with torch.no_grad():
        return t._compute_loss(t.model, world.batch, False).item()


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
    t = world.trainer
    t.loss_type, t.beta = loss_type, beta
    t.desirable_weight, t.undesirable_weight = desirable_weight, undesirable_weight
    with torch.no_grad():
        return t._compute_loss(t.model, world.batch, False).item()


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
