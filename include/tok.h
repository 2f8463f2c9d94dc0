/*
 * tok.h — public API of libtok, the tokenizer core of tokd.
 *
 * libtok encodes text into BPE token ids and decodes them back, exactly as OpenAI's
 * tiktoken does for r50k_base (gpt2), p50k_base, p50k_edit, cl100k_base and o200k_base
 * (and custom encodings described by a manifest and a .tiktoken rank file), and exactly as
 * Hugging Face `tokenizers` does for a BPE `tokenizer.json` (Llama, Qwen, DeepSeek, Gemma,
 * GPT-OSS, ...).
 *
 * Every tokenizer is one configuration of the same pipeline, the one Hugging Face made
 * standard:
 *
 *   text -> added/special tokens -> normalizer -> pre-tokenizer -> BPE model
 *        -> post-processor -> ids
 *   ids  -> decoder -> text (or the exact bytes)
 *
 * A tiktoken encoding is the configuration with no normalizer, one regex split, a
 * byte-level BPE model whose merge priority is the token's rank, and special tokens that
 * are matched only when allowed.
 *
 * Threading model:
 *   - A tok_registry and every tok_encoding in it are immutable after tok_registry_load()
 *     returns. Any number of threads may use them at once without locks.
 *   - A tok_scratch holds one thread's working memory (regex match data, merge arrays,
 *     output buffers). It must not be used by two threads at once. Results returned in a
 *     tok_encode_result point into the scratch and stay valid until the next call that
 *     uses the same scratch.
 *
 * Errors: every fallible call returns a tok_err (TOK_OK is 0) and, when given a non-NULL
 * tok_error, fills it with the code, the byte position or index involved and a
 * human-readable detail line. Out-parameters are written only on success.
 *
 * The core knows nothing of HTTP or JSON.
 */
#ifndef TOK_H
#define TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(ENUM, name, message, http_status). The HTTP status is the one a server should answer
 * with; the core never uses it. */
#define TOK_ERROR_TABLE(X)                                                                    \
  X(TOK_OK, "ok", "success", 200)                                                             \
  X(TOK_ENOMEM, "out_of_memory", "out of memory", 503)                                        \
  X(TOK_EINVAL, "invalid_argument", "invalid argument", 400)                                  \
  X(TOK_EUTF8, "invalid_utf8", "input is not valid UTF-8", 422)                               \
  X(TOK_EUNKNOWN_ENCODING, "unknown_encoding", "unknown encoding", 404)                       \
  X(TOK_EUNKNOWN_TOKEN, "unknown_token", "token id is not in the vocabulary", 400)            \
  X(TOK_EUNKNOWN_SPECIAL, "unknown_special_token", "not a special token of this encoding",    \
    400)                                                                                      \
  X(TOK_EDISALLOWED_SPECIAL, "disallowed_special_token",                                      \
    "text contains a special token that is not allowed", 400)                                 \
  X(TOK_EREGEX, "pretokenizer_failed", "pre-tokenizer failed (regex resource limit)", 422)    \
  X(TOK_ELIMIT, "limit_exceeded", "size limit exceeded", 413)                                 \
  X(TOK_EBYTE_MISSING, "byte_not_in_vocabulary",                                              \
    "a byte of the input has no token in this vocabulary", 422)                               \
  X(TOK_EIO, "io_error", "cannot read file", 500)                                             \
  X(TOK_EVOCAB, "bad_vocabulary", "malformed vocabulary file", 500)                           \
  X(TOK_EMANIFEST, "bad_manifest", "malformed encoding manifest", 500)                        \
  X(TOK_ECHECKSUM, "checksum_mismatch", "vocabulary file does not match its SHA-256", 500)    \
  X(TOK_EPATTERN, "bad_pattern", "pre-tokenizer pattern does not compile", 500)             \
  X(TOK_ETOKENIZER, "bad_tokenizer", "malformed tokenizer.json", 500)                         \
  X(TOK_EUNSUPPORTED, "unsupported_component", "tokenizer component not supported", 500)      \
  X(TOK_ETEMPLATE, "bad_chat_template", "chat template cannot be parsed or is not supported",  \
    400)                                                                                      \
  X(TOK_ERENDER, "chat_template_error", "chat template failed while rendering", 400)

typedef enum {
#define TOK__ENUM(e, name, msg, status) e,
  TOK_ERROR_TABLE(TOK__ENUM)
#undef TOK__ENUM
      TOK_ERR__COUNT
} tok_err;

/* Static strings; an out-of-range code gives "unknown". */
const char *tok_err_name(tok_err code);
const char *tok_err_message(tok_err code);

#define TOK_NO_POS SIZE_MAX

typedef struct tok_error {
  tok_err code;
  size_t pos;       /* byte offset into the input, or TOK_NO_POS */
  size_t index;     /* index into an id array, or line number of a file; or TOK_NO_POS */
  char detail[320]; /* one line saying what is wrong, naming the file/id/offset involved */
} tok_error;

/* ---------------------------------------------------------------------------------------
 * Growable byte buffer with a mandatory cap (exceeding it is TOK_ELIMIT).
 * A zeroed tok_buf with .limit set is ready to use; tok_buf_free releases it.
 */
typedef struct tok_buf {
  char *data;
  size_t len;
  size_t cap;
  size_t limit; /* maximum len; 0 means SIZE_MAX/2 */
} tok_buf;

tok_err tok_buf_reserve(tok_buf *buf, size_t extra);
tok_err tok_buf_append(tok_buf *buf, const void *bytes, size_t bytes_len);
void tok_buf_free(tok_buf *buf);

/* ---------------------------------------------------------------------------------------
 * UTF-8 helpers.
 */

/* Returns true when s[0..len) is valid UTF-8 (no overlongs, surrogates or values above
 * U+10FFFF). On false, *bad_pos (if not NULL) is the offset of the first invalid byte. */
bool tok_utf8_valid(const char *s, size_t len, size_t *bad_pos);

/* Appends s[0..len) to out with every maximal invalid subsequence replaced by U+FFFD
 * (the Unicode/WHATWG "substitution of maximal subparts" rule, as TextDecoder and Python's
 * errors="replace" do). */
tok_err tok_utf8_append_lossy(tok_buf *out, const char *s, size_t len);

/* Length of the longest prefix of s[0..len) that does not end inside an incomplete but
 * still possibly valid UTF-8 sequence. The held-back tail is at most 3 bytes. */
size_t tok_utf8_complete_len(const char *s, size_t len);

/* ---------------------------------------------------------------------------------------
 * Base64 (RFC 4648, padded).
 */

/* Decoded length of a padded base64 string, or -1 when it is not one. */
long tok_base64_decoded_len(const char *s, size_t len);
/* Appends the decoded bytes; TOK_EINVAL when s is not padded base64. "" decodes to "". */
tok_err tok_base64_decode(const char *s, size_t len, tok_buf *out);
tok_err tok_base64_encode(const void *bytes, size_t len, tok_buf *out);

/* ---------------------------------------------------------------------------------------
 * Tokenizers ("encodings") and the registry that owns them.
 */
typedef struct tok_registry tok_registry;
typedef struct tok_encoding tok_encoding;

typedef struct tok_special_token {
  const char *text; /* NUL-terminated; also has text_len bytes */
  size_t text_len;
  uint32_t id;
} tok_special_token;

typedef enum { TOK_KIND_TIKTOKEN, TOK_KIND_HUGGINGFACE } tok_kind;

typedef struct tok_encoding_info {
  const char *name;
  const char *const *aliases; /* NULL-terminated */
  tok_kind kind;
  const char *source;         /* the file it came from (a rank file name when embedded) */
  const char *pattern;        /* tiktoken: the pre-tokenizer regex; Hugging Face: NULL */
  const char *sha256;         /* tiktoken: hex SHA-256 of the rank file; else "" */
  uint32_t n_ranks;           /* tokens of the BPE model (mergeable ranks) */
  uint32_t n_vocab;           /* highest id + 1 */
  size_t n_special;
  const tok_special_token *special; /* n_special entries: the special tokens, in file order */
  size_t n_added;             /* added tokens, special or not (tiktoken: == n_special) */
  /* One line each naming the pipeline's components, e.g. "NFC", "Split(Isolated),
   * ByteLevel", "BPE(byte_level, ignore_merges)", "TemplateProcessing", "ByteLevel";
   * "" when the stage is empty. */
  const char *normalizer, *pre_tokenizer, *model, *post_processor, *decoder;
  /* BOS/EOS as named by tokenizer_config.json (Hugging Face directories), else NULL. */
  const char *bos_token, *eos_token;
  /* The chat template (Jinja source) of a Hugging Face directory: chat_template.jinja, else
   * tokenizer_config.json's chat_template; NULL when there is none. */
  const char *chat_template;
  /* The model's context length as vLLM derives it from the directory (config.json's
   * max_position_embeddings and kin, rope scaling, tokenizer_config.json's
   * model_max_length); 0 when the files do not say (tiktoken, a bare tokenizer.json). */
  uint64_t max_model_len;
  bool embedded; /* loaded from the copy built into the binary */
} tok_encoding_info;

/* A Hugging Face tokenizer to load: NAME=PATH, where PATH is a tokenizer.json file (read
 * alone, as `tokenizers` reads it) or a directory holding one (then tokenizer_config.json
 * beside it is applied as transformers' AutoTokenizer does: BOS/EOS of Llama- and
 * Gemma-class tokenizers, clean_up_tokenization_spaces). */
typedef struct tok_tokenizer_source {
  const char *name;
  const char *path;
} tok_tokenizer_source;

typedef struct tok_load_opts {
  /* tiktoken encodings: NULL means the ones embedded in the binary; otherwise every
   * DIR/<name>.manifest is read. */
  const char *vocab_dir;
  /* Comma-separated tiktoken encoding names or aliases to load; NULL or "" for all,
   * "none" for none. */
  const char *encodings;
  const tok_tokenizer_source *tokenizers;
  size_t n_tokenizers;
  /* A directory for the backtracking encoder's tables of Hugging Face models (NULL: none):
   * tok_registry_warm writes a model's tables there once built, and the next load of the
   * same model uses the file instead of building (a file is used only when it matches the
   * model, is whole and every value in it is in range; otherwise it is rebuilt). The
   * directory must pass tok_cache_dir_check, else the load goes on without a cache
   * (tok_registry_cache_refused says why). */
  const char *cache_dir;
} tok_load_opts;

/* Prepares dir as the table cache: creates it (mode 0700, and its parent, 0755) when
 * missing, then accepts it only if it is a directory owned by this user or by root that no
 * other user can write (group or other write only with the sticky bit, as /tmp). Files in
 * it are then created with O_EXCL under fresh names and read only when they are regular
 * files owned by this user that nobody else can write, so a cache on a shared volume cannot
 * be made to overwrite or plant anything. TOK_EINVAL with the reason in err->detail when
 * refused; TOK_EIO when it cannot be created or examined. */
tok_err tok_cache_dir_check(const char *dir, tok_error *err);

/* Loads tokenizers (files are read in parallel, one thread per file). On success *out owns
 * everything and must be released with tok_registry_free. Not thread-safe (call once at
 * start-up); the result is immutable and safe to share between threads. A component of a
 * tokenizer.json that libtok does not implement is refused (TOK_EUNSUPPORTED, naming it and
 * its JSON path), never ignored. */
tok_err tok_registry_load(const tok_load_opts *opts, tok_registry **out, tok_error *err);
void tok_registry_free(tok_registry *reg);
/* Why the cache directory given to tok_registry_load is not used (tok_cache_dir_check's
 * reason), or NULL when it is, or none was given. Owned by reg. */
const char *tok_registry_cache_refused(const tok_registry *reg);
/* Builds the tables of the backtracking encoder of every byte-level model that allows it
 * and does not have them yet, on up to as many threads as there are cores, and writes them
 * to the cache directory when there is one. The built-in vocabularies have them from the
 * start (built with libtok and embedded), and so does a Hugging Face model found in the
 * cache; otherwise it needs this (100-500 ms for a 130-200k vocabulary). Until then, and for
 * models that do not allow it, long pieces take the heap merger (slower on pieces of many
 * bytes, same result), and a piece of 4 KiB or more builds its model's tables first.
 * Thread-safe; may run on a thread of its own while others encode. */
void tok_registry_warm(const tok_registry *reg);

/* Memory accounting: what the loaded tokenizers hold, by tokenizer and structure. */
typedef struct tok_memory_item {
  const char *tokenizer;  /* the first encoding name using the model (a model may serve two) */
  const char *structure;  /* "vocab" (token bytes and offsets), "vocab_hash", "byte_tables",
                             "merges", "bt_tables" (the backtracking encoder's), "bt_memo" */
  size_t bytes;           /* its size */
  size_t resident;        /* of which mapped into this process now (touched pages only) */
  bool file_backed;       /* pages of the executable: shared by processes and reclaimable;
                             otherwise anonymous (this process's; a cache file's tables are
                             copied, see tok_cache_dir_check) */
} tok_memory_item;

/* Fills items[0 .. cap) and returns how many there are (more than cap: call again with
 * more room). Thread-safe; the figures are a snapshot. */
size_t tok_registry_memory(const tok_registry *reg, tok_memory_item *items, size_t cap);

size_t tok_registry_count(const tok_registry *reg);
const tok_encoding *tok_registry_at(const tok_registry *reg, size_t i);
/* Finds a tokenizer by name or alias; NULL when not loaded. */
const tok_encoding *tok_registry_find(const tok_registry *reg, const char *name,
                                      size_t name_len);

/* Names of the encodings built into the binary, NULL-terminated. */
const char *const *tok_embedded_names(void);

/* Maps an OpenAI model name ("gpt-4o", "gpt-3.5-turbo-0125", ...) to its encoding name as
 * tiktoken does (exact names first, then known prefixes). NULL when unknown. */
const char *tok_model_encoding(const char *model, size_t model_len);

const tok_encoding_info *tok_encoding_get_info(const tok_encoding *enc);

/* ---------------------------------------------------------------------------------------
 * Special-token sets: a bit per special token of one encoding (1 = in the set).
 */
#define TOK_MAX_SPECIAL 4096

typedef struct tok_special_set {
  size_t n; /* == info->n_special */
  uint64_t bits[TOK_MAX_SPECIAL / 64]; /* tokenizers with more specials are refused at load */
} tok_special_set;

static inline bool tok_special_set_has(const tok_special_set *set, size_t k)
{
  return (set->bits[k >> 6] >> (k & 63)) & 1;
}

/* Parses "all", "none"/"" or a comma-separated list of special-token texts into set.
 * TOK_EUNKNOWN_SPECIAL names the first text that is not a special token. */
tok_err tok_special_set_parse(const tok_encoding *enc, const char *spec, size_t spec_len,
                              tok_special_set *set, tok_error *err);
/* Adds one token text to a set. */
tok_err tok_special_set_add(const tok_encoding *enc, tok_special_set *set, const char *text,
                            size_t text_len, tok_error *err);
void tok_special_set_all(const tok_encoding *enc, tok_special_set *set);
void tok_special_set_none(const tok_encoding *enc, tok_special_set *set);

/* ---------------------------------------------------------------------------------------
 * Per-thread scratch.
 */
typedef struct tok_scratch tok_scratch;

typedef struct tok_limits {
  size_t max_tokens_out; /* most ids one call may produce; 0 = no limit besides memory */
  uint32_t match_limit;  /* PCRE2 match limit per piece; 0 = library default */
  size_t jit_stack_max;  /* bytes of PCRE2 JIT stack; 0 = 1 MiB */
} tok_limits;

/* NULL limits means defaults. Returns NULL when out of memory. */
tok_scratch *tok_scratch_new(const tok_limits *limits);
void tok_scratch_free(tok_scratch *scratch);
/* Releases working arrays that grew beyond about keep_bytes (after an unusually large
 * request), so one big input does not pin memory for the life of the thread. */
void tok_scratch_trim(tok_scratch *scratch, size_t keep_bytes);

/* ---------------------------------------------------------------------------------------
 * Encode and decode.
 */
typedef struct tok_encode_opts {
  /* Special tokens whose text becomes their id. NULL: the tokenizer's default, which is
   * none for tiktoken encodings (tiktoken's encode_ordinary: all text is ordinary) and all
   * for Hugging Face tokenizers (as `tokenizers` and vLLM's /tokenize match them).
   * Non-special added tokens of a Hugging Face tokenizer are always matched. */
  const tok_special_set *allowed_special;
  /* When true, text containing a special token that is not allowed is an error
   * (TOK_EDISALLOWED_SPECIAL with its position), like tiktoken's encode() default. */
  bool check_disallowed;
  /* Apply the post-processor (BOS/EOS and the like of Hugging Face tokenizers;
   * tiktoken encodings have none). */
  bool add_special_tokens;
  /* When non-zero, stop once more than stop_after tokens were produced: the result has
   * stop_after + 1 ids and .stopped set (used to answer "does it fit" cheaply). */
  size_t stop_after;
  /* Also produce each token's [start, end) byte range in text. */
  bool want_offsets;
  /* Encode a long text in parts on several threads (see tok_split); NULL: one thread. */
  const struct tok_split *split;
  /* Remember the ids of texts that may come again extended or whole (chat histories sent
   * again with a new turn) and reuse them (see tok_prefix_cache); NULL: none. Not used
   * with want_offsets, stop_after, or a split that applies. Never changes an id. */
  const struct tok_prefix_cache *prefix_cache;
} tok_encode_opts;

/* The prefix cache: the ids of texts up to a point where tokenization provably restarts —
 * the end of an added or special token matched in the text, as a chat template's turn
 * markers are — kept by the exact bytes before it, so a text that extends a remembered one
 * there is tokenized only from that point, and a text seen whole before costs a lookup
 * (texts without such a point are kept from their second sight). One cache may serve any
 * number of tokenizers and threads at once (sharded locks, none held while encoding);
 * memory stays within budget_bytes (LRU eviction per shard; a text larger than a
 * sixteenth of the budget is not kept). The proof that a reused prefix gives the ids of
 * encoding the whole text is in src/core/prefix.c. */
typedef struct tok_prefix_cache tok_prefix_cache;
/* NULL when out of memory. */
tok_prefix_cache *tok_prefix_cache_new(size_t budget_bytes);
void tok_prefix_cache_free(tok_prefix_cache *cache);

typedef struct tok_prefix_cache_stats {
  uint64_t hits;        /* lookups that reused ids (exact_hits of them a whole text) */
  uint64_t exact_hits;
  uint64_t misses;
  uint64_t evictions;
  uint64_t bytes_saved; /* bytes of text not tokenized again */
  uint64_t inserts;
  size_t entries, bytes, budget; /* now */
} tok_prefix_cache_stats;
/* A snapshot; thread-safe. */
void tok_prefix_cache_read(const tok_prefix_cache *cache, tok_prefix_cache_stats *out);

/* One long text on several threads: when the encoding allows it (tok_encoding_splits) and
 * the text has at least 2 * min_part bytes, it is cut into up to n_helpers + 1 parts of
 * about equal size, only at a space between two letters (never inside a CJK run or a run
 * of one character), where every stage of such an encoding provably starts afresh; the
 * first part is encoded by the calling thread, each other part by a thread started for it
 * with a scratch of its own, and the ids are joined in order. The result, offsets and
 * errors are those of one thread (a part that fails is redone in order by the caller).
 * Not used with stop_after. Memory: the helpers' ids are copied into the caller's scratch,
 * so ids take up to twice their usual size while they are joined. */
typedef struct tok_split {
  tok_scratch *const *helpers; /* n_helpers scratches, one per helper thread */
  unsigned n_helpers;
  size_t min_part;             /* the least bytes of a part; 0: TOK_SPLIT_MIN_PART */
} tok_split;
#define TOK_SPLIT_MIN_PART ((size_t)256 << 10)

/* Whether tok_split applies to this encoding: byte-level BPE, a pre-tokenizer of the
 * scanned pattern families, no normalizer but Unicode forms (cl100k_base, o200k_base,
 * r50k/p50k, Llama 3, Qwen, DeepSeek-V3, GPT-OSS; not SentencePiece models; encoding.c). */
bool tok_encoding_splits(const tok_encoding *enc);

typedef struct tok_encode_result {
  const uint32_t *ids;     /* points into the scratch */
  /* 2 per token when asked for, else NULL: the [start, end) byte range of the text the
   * token came from (for a normalized text, the original bytes that produced it; tokens
   * added by the post-processor have [0, 0)). */
  const uint32_t *offsets;
  size_t len;
  bool stopped; /* encoding stopped early because of stop_after */
} tok_encode_result;

/* Encodes text[0..text_len), which must be valid UTF-8 (TOK_EUTF8 with the offset of the
 * first bad byte otherwise). opts NULL means the defaults above. */
tok_err tok_encode(const tok_encoding *enc, tok_scratch *scratch, const char *text,
                   size_t text_len, const tok_encode_opts *opts, tok_encode_result *out,
                   tok_error *err);

/* Counts tokens without keeping ids (same rules as tok_encode). */
tok_err tok_count(const tok_encoding *enc, tok_scratch *scratch, const char *text,
                  size_t text_len, const tok_encode_opts *opts, size_t *count, bool *stopped,
                  tok_error *err);

typedef struct tok_decode_opts {
  bool skip_special_tokens; /* leave special tokens out */
  /* The ids continue an earlier call (streaming): rules that apply only at the start of a
   * text (a decoder's leading-space strip) are not applied again. */
  bool continuation;
} tok_decode_opts;

/* Appends the exact bytes of ids to out: the tokenizer's decoder without its replacement
 * of invalid UTF-8 (for tiktoken and byte-level tokenizers, the token bytes themselves).
 * An unknown id is TOK_EUNKNOWN_TOKEN with err->index set to its position in ids. opts
 * NULL means defaults. */
tok_err tok_decode_bytes(const tok_encoding *enc, tok_scratch *scratch, const uint32_t *ids,
                         size_t n_ids, const tok_decode_opts *opts, tok_buf *out,
                         tok_error *err);

/* Appends the decoded text (valid UTF-8) to out, exactly as the tokenizer's decoder
 * produces it (Hugging Face `decode`; tiktoken's decode with errors="replace"). */
tok_err tok_decode_text(const tok_encoding *enc, tok_scratch *scratch, const uint32_t *ids,
                        size_t n_ids, const tok_decode_opts *opts, tok_buf *out,
                        tok_error *err);

/* Decoded bytes of one token as tok_decode_bytes gives them for that id alone (a special
 * token's text for a special); NULL when the id is unknown. Points into the encoding. */
const char *tok_token_bytes(const tok_encoding *enc, uint32_t id, size_t *len);

/* Appends the token's string as Hugging Face names it (the vocabulary entry, e.g.
 * "\u0120world" for byte-level models; tiktoken tokens are shown the same byte-level way).
 * TOK_EUNKNOWN_TOKEN when the id is unknown. */
tok_err tok_token_string(const tok_encoding *enc, uint32_t id, tok_buf *out);

/* Looks up the id of a byte string in the BPE model's vocabulary (its rank for tiktoken). */
bool tok_rank_of(const tok_encoding *enc, const char *bytes, size_t len, uint32_t *rank);

/* Id of a token given by its text (an added token, or a vocabulary entry); false when none. */
bool tok_token_id(const tok_encoding *enc, const char *text, size_t text_len, uint32_t *id);

/* Counters the tests use to prove the merge loop is never quadratic. Per scratch. */
typedef struct tok_work_stats {
  uint64_t pieces;       /* pre-tokenizer pieces */
  uint64_t direct_hits;  /* pieces that were a token themselves */
  uint64_t merge_steps;  /* pair merges performed */
  uint64_t heap_ops;     /* push/pop operations of the long-piece merger */
  uint64_t backtracked;  /* long pieces encoded by the backtracking encoder */
  uint64_t rank_lookups; /* hash probes */
} tok_work_stats;

tok_work_stats tok_scratch_stats(const tok_scratch *scratch);
void tok_scratch_stats_reset(tok_scratch *scratch);

#ifdef __cplusplus
}
#endif
#endif /* TOK_H */
