"""Tiny real models built locally by the tests: nothing is downloaded.

A 2-layer GPT-2 with a byte-level BPE tokenizer trained on text that ships with Python. Its
output is gibberish, but it goes through the real ``from_pretrained``/``generate`` path and is
deterministic under a seed.
"""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path
from typing import Any


def _corpus() -> list[str]:
    import argparse
    import collections
    import pathlib as pathlib_module

    sources = [
        inspect.getsource(m) for m in (argparse, collections, json, pathlib_module, textwrap)
    ]
    return [line for source in sources for line in source.splitlines() if line.strip()]


def _gpt2_tokenizer() -> Any:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_corpus(), vocab_size=2048, special_tokens=["<|endoftext|>"])
    return GPT2TokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


def _roberta_tokenizer() -> Any:
    """A byte-level BPE with BERT-style specials: <s> </s> <pad> <mask>."""
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_corpus(), vocab_size=2048, special_tokens=specials)
    bpe.post_processor = processors.RobertaProcessing(  # type: ignore[assignment]
        ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>"))
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


def build_tiny_gpt2(folder: Path, width: int = 64, layers: int = 2) -> Path:
    """A random-weight GPT-2 (2 layers, 64 wide unless asked otherwise: benchmarks build bigger
    ones to see where a model's cost starts to outweigh the record's)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = _gpt2_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=width,
        n_layer=layers,
        n_head=2,
        n_positions=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _chatml_tokenizer(extra: list[str] | None = None) -> Any:
    """A byte-level BPE with ChatML's specials (and ``extra`` ones), padding with
    <|endoftext|>: what the chat and vision test models share."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *(extra or [])]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_corpus(), vocab_size=1024, special_tokens=specials)
    return GPT2TokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


def build_tiny_chat_gpt2(folder: Path) -> Path:
    """A random-weight GPT-2 whose tokenizer has a ChatML-style chat template and a pad token:
    what TRL's trainers need from a chat model, built in a second."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = _chatml_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=1,
        n_head=2,
        n_positions=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def build_tiny_bart(folder: Path) -> Path:
    """A 2-layer BART: the seq2seq shape of summarisation, translation and text2text models."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    tokenizer = _roberta_tokenizer()
    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=None,
    )
    BartForConditionalGeneration(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def build_tiny_roberta(folder: Path, head: str, labels: list[str] | None = None) -> Path:
    """A 1-layer RoBERTa with a masked-LM head ("mlm") or a classifier head ("classifier")
    whose labels are given (zero-shot needs one called "entailment")."""
    import torch
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaForSequenceClassification

    tokenizer = _roberta_tokenizer()
    torch.manual_seed(0)
    names = labels or ["negative", "positive"]
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=520,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )
    model_cls = RobertaForMaskedLM if head == "mlm" else RobertaForSequenceClassification
    model_cls(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def build_tiny_captioner(folder: Path) -> Path:
    """A ViT encoder + GPT-2 decoder (VisionEncoderDecoder): the shape of image captioners."""
    import torch
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    tokenizer = _gpt2_tokenizer()
    torch.manual_seed(0)
    encoder = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    decoder = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=1,
        n_head=2,
        add_cross_attention=True,
        is_decoder=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = tokenizer.bos_token_id
    config.pad_token_id = tokenizer.eos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    VisionEncoderDecoderModel(config=config).save_pretrained(str(folder))
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


VISION_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_llava(folder: Path) -> Path:
    """A random-weight LLaVA (a 1-layer CLIP vision tower on 32×32 images, a 1-layer Llama) and
    its processor, whose chat template renders image parts as ``<image>``: what TRL's SFT
    trainer needs to train on vision messages with an ``images`` column."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = _chatml_tokenizer(["<image>"])
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
        chat_template=VISION_CHAT_TEMPLATE,
        patch_size=16,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token
    )
    tiny = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1}
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            **tiny, num_attention_heads=2, image_size=32, patch_size=16, projection_dim=32
        ),
        text_config=LlamaConfig(
            **tiny,
            vocab_size=len(tokenizer),
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=512,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder


def build_tiny_wav2vec2(folder: Path) -> Path:
    """A random-weight Wav2Vec2 CTC recogniser (hears 16 kHz, 320 samples a frame, like the real
    ones) with a character vocabulary. Its blank token is pushed down so that every sound is
    heard as some letters: gibberish, but never empty."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<pad>", "<s>", "</s>", "<unk>", "|"]
    vocab = {token: i for i, token in enumerate([*specials, *"abcdefghijklmnopqrstuvwxyz'"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(
        str(folder / "vocab.json"), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|"
    )
    features = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16_000, padding_value=0.0, return_attention_mask=False
    )
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 16, 16),
        conv_stride=(10, 8, 4),
        conv_kernel=(10, 8, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        pad_token_id=vocab["<pad>"],
    )
    model = Wav2Vec2ForCTC(config)
    with torch.no_grad():
        model.lm_head.bias[vocab["<pad>"]] = -10.0
    model.save_pretrained(str(folder))
    Wav2Vec2Processor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(str(folder))
    return folder


def build_tiny_vits(folder: Path, sampling_rate: int = 16_000) -> Path:
    """A random-weight VITS text-to-speech model over characters (no phonemizer): its sound is
    noise shaped by the text, and seeded, through the real ``text-to-speech`` pipeline."""
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(["<pad>", *" abcdefghijklmnopqrstuvwxyz'.,"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = VitsTokenizer(
        str(folder / "vocab.json"), pad_token="<pad>", unk_token="<pad>", phonemize=False
    )
    torch.manual_seed(0)
    config = VitsConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        flow_size=16,
        spectrogram_bins=17,
        upsample_initial_channel=16,
        upsample_rates=[8, 8],
        upsample_kernel_sizes=[16, 16],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1,
        duration_predictor_num_flows=1,
        duration_predictor_filter_channels=16,
        depth_separable_num_layers=1,
        sampling_rate=sampling_rate,
    )
    VitsModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def build_tiny_clip(folder: Path) -> Path:
    """A random-weight CLIP (text and vision towers of one layer, 16-d projections) with a
    byte-level BPE tokenizer: the shape of image embedders, saved for ``from_pretrained``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer = _roberta_tokenizer()
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    processor.save_pretrained(str(folder))
    return folder


def build_tiny_siglip(folder: Path) -> Path:
    """A random-weight SigLIP: another image embedder, whose text tower pools the last position."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    tokenizer = _roberta_tokenizer()
    torch.manual_seed(0)
    tower = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    }
    text = {
        **tower,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 16,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    config = SiglipConfig(
        text_config=text, vision_config={**tower, "image_size": 32, "patch_size": 8}
    )
    SiglipModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    return folder
