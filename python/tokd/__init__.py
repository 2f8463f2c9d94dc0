"""tokd in process: exact BPE tokenizers over libtokd, with tiktoken's and Hugging Face
tokenizers' interfaces, so that switching is one import line:

    import tokd as tiktoken                    # instead of: import tiktoken
    enc = tiktoken.get_encoding("cl100k_base")
    enc.encode("hello world")                  # [15339, 1917]

    from tokd import Tokenizer                 # instead of: from tokenizers import Tokenizer
    tok = Tokenizer.from_file("tokenizer.json")
    tok.encode("hello").ids

The encoders release the GIL for texts over 512 bytes; batches run on threads of their own.
Errors are Python exceptions carrying tokd's message (TokdError is a ValueError).
"""
import json
import os

from . import _native
from ._native import TokdError

__all__ = ["get_encoding", "encoding_for_model", "encoding_name_for_model", "list_encoding_names",
           "Encoding", "Tokenizer", "HFEncoding", "TokdError"]

_REGISTRY = None
_ENCODINGS = {}


def _builtin():
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _native.Registry()  # the five built-in encodings: about 60 ms
    return _REGISTRY


def _cache_dir():
    given = os.environ.get("TOKD_CACHE_DIR")
    if given:
        return None if given in ("off", "none") else given
    base = os.environ.get("XDG_CACHE_HOME") or (os.path.join(os.path.expanduser("~"), ".cache"))
    return os.path.join(base, "tokd")


def _fix_surrogates(text):
    """tiktoken's rule for str that is not valid UTF-8 (lone surrogates): replace them."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _utf8_safe(text):
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _fix_surrogates(text)


# ---------------------------------------------------------------------------------------
# tiktoken's interface
def list_encoding_names():
    return list(_builtin().names())


def get_encoding(encoding_name):
    enc = _ENCODINGS.get(encoding_name)
    if enc is None:
        try:
            native = _builtin().get(encoding_name)
        except KeyError:
            raise ValueError(f"Unknown encoding {encoding_name}. Plugins found: ['tokd']") from None
        enc = _ENCODINGS[encoding_name] = Encoding._wrap(native)
    return enc


def encoding_name_for_model(model_name):
    name = _native.model_encoding(model_name)
    if name is None:
        raise KeyError(f"Could not automatically map {model_name} to a tokeniser. "
                       "Please use `tiktoken.get_encoding` to explicitly get the tokeniser you expect.")
    return name


def encoding_for_model(model_name):
    return get_encoding(encoding_name_for_model(model_name))


def _raise_disallowed(token):
    raise ValueError(
        f"Encountered text corresponding to disallowed special token {token!r}.\n"
        "If you want this text to be encoded as a special token, "
        f"pass it to `allowed_special`, e.g. `allowed_special={{{token!r}, ...}}`.\n"
        f"If you want this text to be encoded as normal text, disable the check for this token "
        f"by passing `disallowed_special=(enc.special_tokens_set - {{{token!r}}})`.\n"
        "To disable this check for all special tokens, pass `disallowed_special=()`.\n")


class Encoding:
    """A tiktoken encoding (tiktoken.Encoding's methods and attributes)."""

    def __init__(self, name, *, pat_str, mergeable_ranks, special_tokens, explicit_n_vocab=None):
        """A custom encoding, as tiktoken.Encoding(...) builds one: written as a rank file
        and a manifest into a temporary directory and loaded from there (the pattern is
        compiled with PCRE2, so it must be a pattern both regex engines read alike)."""
        import base64
        import tempfile
        if any(ch in name for ch in "/\\\n ") or not name:
            raise ValueError(f"invalid encoding name {name!r}")
        with tempfile.TemporaryDirectory(prefix="tokd-enc-") as d:
            with open(os.path.join(d, name + ".tiktoken"), "wb") as f:
                for token, rank in sorted(mergeable_ranks.items(), key=lambda kv: kv[1]):
                    f.write(base64.b64encode(token) + b" %d\n" % rank)
            with open(os.path.join(d, name + ".manifest"), "w", encoding="utf-8") as f:
                f.write(f"name {name}\nranks {name}.tiktoken\n")
                if explicit_n_vocab is not None:
                    f.write(f"n_vocab {explicit_n_vocab}\n")
                if "\n" in pat_str:
                    raise ValueError("pat_str must be one line")
                f.write(f"pattern {pat_str}\n")
                for text, i in special_tokens.items():
                    if any(ch.isspace() for ch in text):
                        raise ValueError(f"special token {text!r}: white space is not supported")
                    f.write(f"special {text} {i}\n")
            self._registry = _native.Registry(name, None, None, d)
        other = Encoding._wrap(self._registry.get(name))
        self.__dict__.update(other.__dict__)

    @classmethod
    def _wrap(cls, native):
        self = cls.__new__(cls)
        self._enc = native
        info = native.info()
        self.name = info["name"]
        self._pat_str = info["pattern"]
        self._special_tokens = dict(info["specials"])
        self.special_tokens_set = set(self._special_tokens)
        self.max_token_value = info["n_vocab"] - 1
        self.n_vocab = info["n_vocab"]
        self.eot_token = self._special_tokens.get("<|endoftext|>")
        self._n_ranks = info["n_ranks"]
        return self

    def __repr__(self):
        return f"<Encoding {self.name!r}>"

    def _allowed(self, text_or_texts, allowed_special, disallowed_special):
        if allowed_special == "all":
            allowed = self.special_tokens_set
        else:
            allowed = set(allowed_special)
        if disallowed_special == "all":
            disallowed = self.special_tokens_set - allowed
        else:
            disallowed = set(disallowed_special)
        if disallowed:
            texts = [text_or_texts] if isinstance(text_or_texts, str) else text_or_texts
            for text in texts:
                first = min(((text.find(t), t) for t in disallowed if t in text), default=None)
                if first is not None:
                    _raise_disallowed(first[1])
        return tuple(t for t in allowed if t in self._special_tokens)

    def encode_ordinary(self, text):
        try:
            return self._enc.encode_plain(text)  # a tiktoken encoding's default: no specials
        except UnicodeEncodeError:  # lone surrogates: the text is repaired, as tiktoken does
            return self._enc.encode_plain(_fix_surrogates(text))

    def encode(self, text, *, allowed_special=set(), disallowed_special="all"):
        allowed = self._allowed(text, allowed_special, disallowed_special)
        try:
            return self._enc.encode(text, allowed or None)
        except UnicodeEncodeError:
            return self._enc.encode(_fix_surrogates(text), allowed or None)

    def encode_batch(self, text, *, num_threads=8, allowed_special=set(), disallowed_special="all"):
        allowed = self._allowed(text, allowed_special, disallowed_special)
        return self._enc.encode_batch([_utf8_safe(t) for t in text], allowed, num_threads=num_threads)

    def encode_ordinary_batch(self, text, *, num_threads=8):
        return self._enc.encode_batch([_utf8_safe(t) for t in text], (), num_threads=num_threads)

    def encode_single_token(self, text_or_bytes):
        if isinstance(text_or_bytes, str):
            if text_or_bytes in self._special_tokens:
                return self._special_tokens[text_or_bytes]
            text_or_bytes = text_or_bytes.encode("utf-8")
        rank = self._enc.rank_of(bytes(text_or_bytes))
        if rank is None:
            raise KeyError(text_or_bytes)
        return rank

    def decode_bytes(self, tokens):
        return self._enc.decode(tokens)

    def decode(self, tokens, errors="replace"):
        return self._enc.decode(tokens).decode("utf-8", errors=errors)

    def decode_single_token_bytes(self, token):
        return self._enc.token_bytes(token)

    def decode_tokens_bytes(self, tokens):
        return [self._enc.token_bytes(t) for t in tokens]

    def decode_with_offsets(self, tokens):
        """(text, offsets): each token's start in the text, in characters (tiktoken's rule:
        a token that starts inside a character gets that character's offset)."""
        token_bytes = self.decode_tokens_bytes(tokens)
        text_len, offsets = 0, []
        for token in token_bytes:
            offsets.append(max(0, text_len - (0x80 <= token[0] < 0xC0)))
            text_len += sum(1 for c in token if not 0x80 <= c < 0xC0)
        return b"".join(token_bytes).decode("utf-8", errors="strict"), offsets

    def token_byte_values(self):
        out = []
        for i in range(self._n_ranks):
            try:
                out.append(self._enc.token_bytes(i))
            except KeyError:
                pass
        return out

    @property
    def special_tokens(self):
        return dict(self._special_tokens)


# ---------------------------------------------------------------------------------------
# Hugging Face tokenizers' interface
class HFEncoding:
    """What tokenizers.Tokenizer.encode returns: ids, tokens, offsets (in characters of
    the text; (0, 0) for tokens the post-processor added), attention_mask, type_ids."""

    __slots__ = ("ids", "tokens", "offsets", "attention_mask", "type_ids")

    def __init__(self, ids, tokens, offsets):
        self.ids = ids
        self.tokens = tokens
        self.offsets = offsets
        self.attention_mask = [1] * len(ids)
        self.type_ids = [0] * len(ids)

    def __len__(self):
        return len(self.ids)

    def __repr__(self):
        return f"Encoding(num_tokens={len(self.ids)}, attributes=[ids, type_ids, tokens, offsets, attention_mask])"


class Tokenizer:
    """A Hugging Face tokenizer (tokenizers.Tokenizer's common methods)."""

    def __init__(self, native, registry):
        self._enc = native
        self._registry = registry  # keeps the loaded tokenizer alive
        info = native.info()
        self._info = info
        self._specials = {text: i for text, i in info["specials"]}

    @classmethod
    def from_file(cls, path):
        """A tokenizer.json, or a model directory holding one (then tokenizer_config.json
        beside it applies, as transformers' AutoTokenizer does)."""
        if not os.path.exists(path):
            raise FileNotFoundError(path)
        reg = _native.Registry("none", [("model", os.fspath(path))], _cache_dir())
        return cls(reg.get("model"), reg)

    def encode(self, sequence, add_special_tokens=True):
        ids, offsets = self._enc.encode(sequence, None, add_special_tokens, "chars")
        return HFEncoding(ids, [self._enc.token_string(i) for i in ids], offsets)

    def encode_batch(self, inputs, add_special_tokens=True):
        """Each input encoded, on the library's threads (one per core, at most 8)."""
        done = self._enc.encode_batch(list(inputs), None, add_special_tokens, min(os.cpu_count() or 1, 8), True)
        return [HFEncoding(ids, [self._enc.token_string(i) for i in ids], offs) for ids, offs in done]

    def decode(self, ids, skip_special_tokens=True):
        return self._enc.decode(ids, True, skip_special_tokens)

    def decode_batch(self, sequences, skip_special_tokens=True):
        return [self.decode(s, skip_special_tokens) for s in sequences]

    def token_to_id(self, token):
        return self._enc.token_id(token)

    def id_to_token(self, id):
        return self._enc.token_string(id)

    def get_vocab_size(self, with_added_tokens=True):
        return self._info["n_vocab"] if with_added_tokens else self._info["n_ranks"]

    def apply_chat_template(self, conversation, tools=None, documents=None, chat_template=None,
                            add_generation_prompt=False, continue_final_message=False, tokenize=True,
                            tokenizer_kwargs=None, **kwargs):
        """transformers' apply_chat_template: the conversation rendered with the model's
        chat template (a model directory's tokenizer_config.json or chat_template.jinja, or
        chat_template=), as text (tokenize=False) or as ids (encoded without adding special
        tokens, as transformers does). Extra keyword arguments become template variables
        (Qwen3's enable_thinking); tokenizer_kwargs={"add_special_tokens": True} adds the
        post-processor's BOS/EOS to the ids, as transformers passes it to the tokenizer."""
        body = {"messages": list(conversation), "add_generation_prompt": bool(add_generation_prompt),
                "continue_final_message": bool(continue_final_message)}
        if tools is not None:
            body["tools"] = tools
        if documents is not None:
            body["documents"] = documents
        if kwargs:
            body["chat_template_kwargs"] = kwargs
        text = self._enc.render_chat(json.dumps(body, ensure_ascii=False), chat_template)
        if not tokenize:
            return text
        add_special = bool((tokenizer_kwargs or {}).get("add_special_tokens", False))
        return self._enc.encode(text, None, add_special)

    def count(self, sequence, add_special_tokens=True):
        """The number of tokens, without building the list (tokd's own)."""
        return self._enc.encode(sequence, None, add_special_tokens, None, True)
