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

    def count(self, texts):
        counts = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=True)["input_ids"]]
        for i, n in enumerate(counts):
            if n > self.max_len:
                raise ProtocolError(
                    f"input[{i}] is {n} tokens; this model embeds at most {self.max_len}", "input", code="context_length_exceeded"
                )
        return sum(counts)

    @torch.inference_mode()
    def embed(self, texts):
        tokens = self.count(texts)
        if self.st is not None:
            vectors = self.st.encode(texts, convert_to_tensor=True, batch_size=32, show_progress_bar=False)
        else:
            batch = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            vectors = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)
        return vectors.float().cpu().tolist(), tokens
