"""Generative vision-language models (LLaVA-style, Qwen-VL, SmolVLM, served endpoints) for NegBench.

Model strings: `vlm:hf:ID_OR_DIR` (transformers image-text-to-text models, see hf.py) and
`vlm:openai:MODEL@URL` (OpenAI-compatible chat endpoints, see openai.py). They are scored by
negbench.evaluation.generative, not by the embedding engine.
"""
