"""The causal-LM architectures the tests build (tiny random configs, no download): shared by
``test_lm_architectures.py`` and by ``tests/test_docs.py``, which checks the count the docs quote.

Plain data: importing this module needs no transformers.
"""

VOCAB = 48
COMMON = {
    "vocab_size": VOCAB, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
    "max_position_embeddings": 64, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 1,
}  # fmt: skip

# model_type → config overrides; the post-head families first, with the field that changes logits
POST_HEAD = {
    "gemma2": {"final_logit_softcapping": 0.3},
    "gemma3_text": {"final_logit_softcapping": 0.3},
    "vaultgemma": {"final_logit_softcapping": 0.3},
    "nanochat": {"final_logit_softcapping": 0.3},
    "cohere": {"logit_scale": 4.0},
    "cohere2": {"logit_scale": 4.0},
    "granite": {"logits_scaling": 0.25},
    "granitemoe": {"logits_scaling": 0.25, "num_local_experts": 2, "num_experts_per_tok": 1},
    "falcon_h1": {
        "lm_head_multiplier": 3.0,
        "mamba_d_state": 8,
        "mamba_n_heads": 2,
        "mamba_d_head": 8,
        "mamba_chunk_size": 16,
        "mamba_expand": 1,
        "mamba_d_ssm": 16,
    },  # fmt: skip (small mamba layers: the reference scan is slow at default sizes)
}

PLAIN = {
    "llama": {}, "mistral": {}, "qwen2": {}, "qwen3": {}, "phi3": {}, "gemma": {}, "olmo2": {},
    "stablelm": {}, "phi": {}, "gpt_neox": {},
    "qwen3_moe": {"num_experts": 2, "num_experts_per_tok": 1, "moe_intermediate_size": 16},
    "gpt2": {"n_embd": 16, "n_layer": 2, "n_head": 2, "n_positions": 64},
    "opt": {"ffn_dim": 32, "word_embed_proj_dim": 16},
    "bloom": {"n_layer": 2, "n_head": 2},
}  # fmt: skip
ARCHITECTURES = {**POST_HEAD, **PLAIN}
