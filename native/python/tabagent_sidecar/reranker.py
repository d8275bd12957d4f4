"""Rerank: a cross-encoder folder (a sequence-classification head with one label) scored with sentence-transformers'
CrossEncoder. A score is what CrossEncoder.predict gives: the model's activation over the head's logit (a sigmoid
for one label unless the model's config names another), the same probability the daemon's other engines answer."""
import threading

from .folder import check_folder
from .protocol import ProtocolError

MAX_DOCUMENTS = 1000


def parse_rerank(body):
    """The query and the documents (strings, or objects with `text`) of a /v1/rerank body."""
    query = body.get("query")
    if not isinstance(query, str) or not query:
        raise ProtocolError("'query' must be a non-empty string", "query")
    docs = body.get("documents")
    if not isinstance(docs, list) or not docs:
        raise ProtocolError("'documents' must be a non-empty array", "documents")
    if len(docs) > MAX_DOCUMENTS:
        raise ProtocolError(f"'documents' has {len(docs)} entries, more than {MAX_DOCUMENTS}", "documents", code="limit_exceeded")
    texts = []
    for i, d in enumerate(docs):
        text = d.get("text") if isinstance(d, dict) else d
        if not isinstance(text, str):
            raise ProtocolError(f"'documents[{i}]' must be a string or an object with 'text'", f"documents[{i}]")
        texts.append(text)
    return query, texts


class Reranker:
    def __init__(self, path, device, dtype, trust_remote_code, log):
        check_folder(path, trust_remote_code)
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(path, device=device, local_files_only=True, trust_remote_code=trust_remote_code, model_kwargs={"dtype": dtype})
        if self.model.num_labels != 1:
            raise ValueError(f"a reranker has one output label; this model has {self.model.num_labels}")
        self.lock = threading.Lock()  # the token count and the pair indices below are per call
        self.tokens = 0
        self.index = {}
        self.max_length = int(self.model.max_length or self.model.tokenizer.model_max_length)
        preprocess = self.model.preprocess
        tokenizer = self.model.tokenizer

        def counted(batch, **kwargs):
            features = preprocess(batch, **kwargs)
            lengths = features["attention_mask"].sum(1).tolist()
            # A pair at the limit may have been cut: CrossEncoder truncates, the daemon's other engines refuse, so
            # this one refuses too (only such pairs are tokenized again, whole).
            for pair, n in zip(batch, lengths):
                if n >= self.max_length:
                    whole = len(tokenizer(pair[0], pair[1], truncation=False)["input_ids"])
                    if whole > self.max_length:
                        i = self.index[id(pair)]
                        raise ProtocolError(
                            f"'documents[{i}]' with the query is {whole} tokens; this model reads at most {self.max_length}.",
                            f"documents[{i}]",
                            code="context_length_exceeded",
                        )
            self.tokens += int(sum(lengths))
            return features

        self.model.preprocess = counted
        log(f"loaded cross-encoder on {device} ({dtype}), max {self.max_length} tokens")

    def rerank(self, body):
        """(scores in document order, prompt tokens)."""
        query, documents = parse_rerank(body)
        pairs = [(query, d) for d in documents]
        with self.lock:
            self.tokens = 0
            self.index = {id(p): i for i, p in enumerate(pairs)}
            scores = self.model.predict(pairs, batch_size=32, show_progress_bar=False, convert_to_numpy=True)
            return [float(s) for s in scores], self.tokens


def rerank_response(state, body):
    """The /v1/rerank answer (Jina shape): results in document order; the daemon sorts and cuts them."""
    scores, tokens = state.engine.rerank(body)
    return {
        "object": "list",
        "model": state.model_id,
        "results": [{"index": i, "relevance_score": s} for i, s in enumerate(scores)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
