"""Embeddings: a sentence-transformers folder runs its own modules (pooling, normalisation) as its config says;
a plain encoder folder gets mean pooling over the attention mask and L2 normalisation."""
import os

import torch

from .folder import check_folder
from .protocol import ProtocolError


class Embedder:
    def __init__(self, path, device, dtype, trust_remote_code, log):
        check_folder(path, trust_remote_code)
        self.device = device
        if os.path.isfile(os.path.join(path, "modules.json")):
            from sentence_transformers import SentenceTransformer

            self.st = SentenceTransformer(
                path, device=device, local_files_only=True, trust_remote_code=trust_remote_code, model_kwargs={"dtype": dtype}
            )
            self.tokenizer = self.st.tokenizer
            self.max_len = int(self.st.max_seq_length or 512)
            log(f"loaded sentence-transformers model on {device} ({dtype}), max {self.max_len} tokens")
        else:
            from transformers import AutoModel, AutoTokenizer

            self.st = None
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
            self.model = AutoModel.from_pretrained(
                path, dtype=dtype, use_safetensors=True, local_files_only=True, trust_remote_code=trust_remote_code
            ).to(device).eval()
            self.max_len = int(getattr(self.model.config, "max_position_embeddings", 512))
            log(f"loaded encoder {self.model.config.model_type} on {device} ({dtype}), mean pooling, max {self.max_len} tokens")

    def ids(self, request):
        """Token ids per input: texts tokenized with the model's special tokens; ids given as input used as they are,
        each checked against the tokenizer's vocabulary."""
        vocab = len(self.tokenizer)
        out = []
        for i, item in enumerate(request):
            if isinstance(item, str):
                ids = list(self.tokenizer(item, add_special_tokens=True)["input_ids"])
            else:
                ids = item
                for j, t in enumerate(ids):
                    if t < 0 or t >= vocab:
                        raise ProtocolError(
                            f"Invalid value for '{request.param(i, j)}': token id {t} is outside this model's vocabulary (0 to {vocab - 1}).",
                            request.param(i, j),
                            code="invalid_value",
                        )
            if len(ids) > self.max_len:
                raise ProtocolError(
                    f"{request.param(i)} is {len(ids)} tokens; this model embeds at most {self.max_len}",
                    request.param(i),
                    code="context_length_exceeded",
                )
            out.append(ids)
        return out

    @torch.inference_mode()
    def embed(self, request):
        """Texts go through sentence-transformers (or the tokenizer) as they always did; token ids are padded into a
        batch and run through the same modules, without special tokens added (the caller tokenized already)."""
        batches = self.ids(request)
        tokens = sum(len(ids) for ids in batches)
        texts = list(request)
        if all(isinstance(t, str) for t in texts):
            if self.st is not None:
                vectors = self.st.encode(texts, convert_to_tensor=True, batch_size=32, show_progress_bar=False)
            else:
                batch = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                vectors = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)
            return vectors.float().cpu().tolist(), tokens
        vectors = [self._embed_ids(batches[start : start + 32]) for start in range(0, len(batches), 32)]
        return torch.cat(vectors).float().cpu().tolist(), tokens

    def _embed_ids(self, batch):
        width = max(len(ids) for ids in batch)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch], device=self.device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch], device=self.device)
        features = {"input_ids": input_ids, "attention_mask": mask}
        if self.st is not None:
            if "token_type_ids" in getattr(self.tokenizer, "model_input_names", []):
                features["token_type_ids"] = torch.zeros_like(input_ids)
            return self.st(features)["sentence_embedding"]
        hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)
