"""Text-to-image pipelines: real models from a local path / the Hugging Face cache, and tiny
random-init Stable Diffusion pipelines built from small configs (tests, `profile all --tiny`).

torch / diffusers / transformers are imported inside the functions only.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from simulator.errors import InputError

DTYPES = ("fp32", "fp16", "bf16")
_TRUE = {"1", "true", "yes", "on"}


class PipelineError(InputError):
    """A pipeline that cannot be loaded (unknown dtype, model not available offline)."""


def torch_dtype(name: str):
    """torch dtype for 'fp32' | 'fp16' | 'bf16'."""
    import torch

    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if name not in table:
        raise PipelineError(f"dtype {name!r}: expected one of {', '.join(DTYPES)}")
    return table[name]


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) asks for no network access."""
    return any(
        os.environ.get(var, "").strip().lower() in _TRUE
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def load_pipeline(id_or_path: str, dtype: str = "fp16", device: str = "cuda"):
    """A diffusers text-to-image pipeline from a local folder or a hub id (cache only when
    offline), moved to `device`, progress bar off."""
    from diffusers import AutoPipelineForText2Image

    local = Path(id_or_path).is_dir()
    try:
        pipe = AutoPipelineForText2Image.from_pretrained(
            id_or_path, torch_dtype=torch_dtype(dtype), local_files_only=local or hub_offline()
        )
    except OSError as exc:
        raise PipelineError(
            f"model {id_or_path!r}: cannot load ({str(exc).splitlines()[0]})"
        ) from None
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _byte_level_tokenizer():
    """A CLIP tokenizer whose vocabulary is the 256 byte-level symbols (with and without the
    end-of-word suffix) and no merges: every word is spelled out, nothing is downloaded."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "vocab.json").write_text(json.dumps(vocab))
        (Path(folder) / "merges.txt").write_text("#version: 0.2\n")
        return CLIPTokenizer.from_pretrained(folder, model_max_length=77)


def tiny_pipeline(seed: int, width: int = 8):
    """A random-init Stable Diffusion pipeline small enough for CPU tests (32x32 images in
    well under a second per step). `width` scales the UNet/VAE channels (a 'heavier' model)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    if width < 4 or width % 4:
        raise PipelineError(f"tiny pipeline width {width}: expected a multiple of 4, >= 4")
    channels = (width // 2, width)
    tokenizer = _byte_level_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            block_out_channels=channels,
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=2,
            norm_num_groups=2,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            block_out_channels=channels,
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            latent_channels=4,
            norm_num_groups=2,
            sample_size=32,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                hidden_size=32,
                intermediate_size=37,
                num_attention_heads=4,
                num_hidden_layers=2,
                max_position_embeddings=77,
            )
        )
    pipe = StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=EulerDiscreteScheduler(steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
