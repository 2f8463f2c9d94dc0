/*
 * internal.h — structures shared by the modules of libtok (never installed).
 *
 * A tok_encoding is one configuration of the pipeline
 *
 *   added tokens -> normalizer -> pre-tokenizer -> model (BPE) -> post-processor
 *   decoder (the way back)
 *
 * and each stage's frozen state lives in its own struct below, built once by a loader
 * (src/load/) and never written again: that is what lets every thread read it without
 * locks. Per-request memory lives in a tok_scratch owned by one thread.
 *
 * Ownership: a tok_registry owns its encodings and the BPE models (tok__model) they point
 * at; several encodings may share one model (p50k_base and p50k_edit).
 */
#ifndef TOK_INTERNAL_H
#define TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/phash.h"
#include "core/scan.h"
#include "tok.h"

#define TOK__NONE UINT32_MAX

/* err.c: fills err (if not NULL) with code, position, index and a formatted detail line.
 * Returns code so callers can `return tok__fail(...)`. */
tok_err tok__fail(tok_error *err, tok_err code, size_t pos, size_t index, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));
#define tok__nomem(err) tok__fail((err), TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory")

static inline bool tok__bit(const uint64_t *bits, uint32_t i) { return (bits[i >> 6] >> (i & 63)) & 1; }
static inline void tok__bit_set(uint64_t *bits, uint32_t i) { bits[i >> 6] |= 1ull << (i & 63); }

/* ---------------------------------------------------------------------------------------
 * Model: byte-pair encoding (vocab.c builds it, bpe.c runs it).
 *
 * Tokens are stored as the bytes they decode to. For byte-level vocabularies (tiktoken,
 * and Hugging Face ByteLevel models, whose vocabulary strings spell bytes with GPT-2's
 * printable alphabet) that is the byte string the merge loop works on, so encoding never
 * maps bytes to characters. A piece is split into parts (one per byte, or one per
 * character for SentencePiece-style "char-level" models), and adjacent parts are merged by
 * priority, lowest first, leftmost among equals:
 *   - by rank (tiktoken): any two parts whose bytes joined are a token merge; the priority
 *     is that token's rank, which is also its id;
 *   - by list (Hugging Face): only pairs listed in `merges` merge; the priority is the
 *     pair's index in the list. The list is stored by the token it produces (merge_start),
 *     each entry giving the left part's length, so a pair is checked by looking its joined
 *     bytes up in the same hash as a tiktoken pair, then its split point.
 */
typedef struct tok__bt tok__bt; /* backtrack.c */

typedef struct tok__model {
  uint32_t id_end;     /* highest id + 1 (ids may have gaps) */
  uint32_t n_tokens;   /* ids present */
  uint32_t *off;       /* id_end + 1 offsets: token id decodes to bytes[off[id] .. off[id+1]) */
  uint8_t *bytes;
  tok__phash index;    /* bytes of every encodable token -> TOK__ENTRY(id, offset, length) */
  uint32_t max_len;    /* longest encodable token, in bytes */
  /* by a token's first two bytes, the length of the longest token that starts with them
   * (255: 255 or more); NULL when out of memory */
  uint8_t *max_len2;
  uint32_t byte_id[256]; /* byte-level: id of each one-byte token, TOK__NONE if none */
  uint32_t *pair_prio; /* byte-level: 65,536 entries, the priority of merging bytes a, b
                          (first byte high), TOK__NONE if they do not merge */

  bool by_list;        /* merge by list (Hugging Face) rather than by rank (tiktoken) */
  uint32_t n_merges;
  uint32_t *merge_id;     /* by list: n_merges: the token merge p produces */
  uint32_t *merge_start;  /* by list: id_end + 1: id's merges are [start[id], start[id+1]) */
  uint16_t *merge_left;   /*   ... the left part's length in bytes */
  uint32_t *merge_prio;   /*   ... and the merge's priority */
  /* By list without ignore_merges: a bit per id set when merging the token's own bytes
   * gives that token alone, so a piece equal to it may skip the merge loop. NULL: a piece
   * that is a token is always that token (tiktoken; Hugging Face's ignore_merges). */
  uint64_t *whole_ok;

  bool byte_level;     /* parts start as bytes; strings are GPT-2 byte-level spellings */
  uint64_t *literal;   /* byte-level: bit per id whose vocabulary string is not a byte-level
                          spelling (its bytes are the string itself; never encoded); or NULL */
  bool byte_fallback;  /* char-level: unknown characters become <0xNN> tokens */
  uint32_t fallback_id[256];
  uint32_t unk_id;     /* TOK__NONE: none */
  bool fuse_unk;
  bool missing_is_error; /* a byte with no token is an error (tiktoken) instead of dropped */
  /* Char-level models whose vocabulary never has "▁" (U+2581, SentencePiece's word mark)
   * after another character, except after the few characters in sticky[]: no token, so no
   * merge, can span the point before such a "▁", so long pieces are encoded word by word,
   * with the same result and without one merge loop over a whole text. */
  bool split_words;
  uint8_t n_sticky;
  uint32_t sticky[8];
  /* The backtracking encoder's tables (backtrack.c), built on first use under bt_lock;
   * bt_state: 0 not yet, 1 built, 2 not applicable. */
  tok__bt *bt;
  atomic_int bt_state;
  /* byte-level: a hash of everything the tables derive from (tokens, ids, merges), which
   * names their blob in the image and their cache file; set by tok__bt_attach_image */
  uint64_t fingerprint;
  pthread_mutex_t bt_lock;
  /* this model's number in the process (from 1), which tags its entries in the scratches'
   * piece caches */
  uint32_t serial;
  /* the arrays (off, bytes, index, max_len2, pair_prio) point into the built-in image
   * (vocab.c, "Images"): read-only, not freed */
  bool in_image;
} tok__model;

/* The index stores, per token, its id (low 32 bits) and where its bytes are (high 32
 * bits: offset << 8 | length, the length capped at 255), so that a lookup touches the pilot,
 * this entry and the token's bytes, and rejects most strangers on the length alone. */
#define TOK__ENTRY(id, off, len) ((uint64_t)(id) | (uint64_t)((off) << 8 | ((len) < 255 ? (len) : 255)) << 32)
#define TOK__MAX_TOKEN_BYTES (1u << 24) /* offsets must fit in 24 bits */

/* Looks up the id of bytes[0..len); TOK__NONE when it is not an encodable token. */
static inline uint32_t tok__token_lookup(const tok__model *m, const uint8_t *bytes, size_t len)
{
  const tok__phash_slot *slot = tok__phash_get(&m->index, bytes, len);
  if (!slot) return TOK__NONE;
  uint64_t entry = slot->value;
  uint32_t id = (uint32_t)entry, off_len = (uint32_t)(entry >> 32);
  /* len >= 1 always here. The slot holds the token's first 8 bytes: a token of up to 8
   * bytes (most) is settled without reading its bytes, a longer one compares the rest. */
  if ((off_len & 255) != (len < 255 ? len : 255) || id >= m->id_end ||
      slot->head != tok__head8(bytes, len))
    return TOK__NONE;
  if (len <= 8) return id;
  if (len >= 255 && m->off[id + 1] - m->off[id] != len) return TOK__NONE;
  const uint8_t *token = m->bytes + (off_len >> 8);
  return memcmp(token + 8, bytes + 8, len - 8) == 0 ? id : TOK__NONE;
}

/* Priority of merging the parts p[0..left) and p[left..len); TOK__NONE when they do not. */
static inline uint32_t tok__merge_prio(const tok__model *m, const uint8_t *p, size_t left,
                                       size_t len)
{
  if (len > m->max_len) return TOK__NONE;
  uint32_t id = tok__token_lookup(m, p, len);
  if (id == TOK__NONE || !m->by_list) return id;
  for (uint32_t k = m->merge_start[id]; k < m->merge_start[id + 1]; k++)
    if (m->merge_left[k] == left) return m->merge_prio[k];
  return TOK__NONE;
}

/* The token a merge of priority prio produces. */
static inline uint32_t tok__merge_result(const tok__model *m, uint32_t prio)
{
  return m->by_list ? m->merge_id[prio] : prio;
}

/* vocab.c: building a model. The loader adds tokens (bytes, id) and, for merging by list,
 * merges (left bytes, right bytes) in priority order, then finishes. */
typedef struct tok__model_builder tok__model_builder;
tok__model_builder *tok__model_builder_new(void);
void tok__model_builder_free(tok__model_builder *b);
/* literal: a byte-level vocabulary entry that is not a byte-level spelling (decoded as is,
 * never produced by encoding). */
tok_err tok__model_add_token(tok__model_builder *b, const uint8_t *bytes, size_t len, uint32_t id,
                             bool literal);
tok_err tok__model_add_merge(tok__model_builder *b, const uint8_t *left, size_t left_len,
                             const uint8_t *right, size_t right_len);
typedef struct tok__model_opts {
  bool by_list, byte_level, ignore_merges, byte_fallback, fuse_unk, missing_is_error;
  uint32_t unk_id; /* TOK__NONE: none */
  const char *what; /* names the source in error messages */
} tok__model_opts;
tok_err tok__model_finish(tok__model_builder *b, const tok__model_opts *opts, tok__model **out,
                          tok_error *err);
void tok__model_free(tok__model *m);

/* The model of the rank file whose sha256 is sha256_hex, from the built-in image (vocab.c,
 * "Images"), or NULL when the image has none: then the loader parses the file. Only
 * tiktoken's kind of model (byte-level, by rank) is kept there. */
tok__model *tok__model_from_image(const char *sha256_hex);
/* Appends m's blob (keyed by sha256_hex) to an image; TOK_OK without writing for a model
 * of another kind. */
tok_err tok__model_image_write(const tok__model *m, const char *sha256_hex, FILE *out);
/* Whether two models have the same tables (tests: the image is current). */
bool tok__model_same(const tok__model *a, const tok__model *b);
/* Id of a token given by its decode bytes (vocabulary strings of char-level models;
 * byte-level spellings must be mapped to bytes first). Includes literal entries. */
uint32_t tok__model_find(const tok__model *m, const uint8_t *bytes, size_t len);

/* ---------------------------------------------------------------------------------------
 * Added tokens (added.c): special and non-special tokens matched in the text before the
 * model sees it, leftmost first and longest among those starting there (Hugging Face's
 * Aho-Corasick LeftmostLongest; tiktoken's specials never overlap, so the same rule).
 */
typedef struct tok__added {
  char *content;       /* the token's text */
  uint32_t content_len;
  char *match;         /* the text matched: content, or its normalized form (normalized) */
  uint32_t match_len;
  char *decoded;       /* what the decoder turns it into, when the fast path applies */
  uint32_t decoded_len;
  uint32_t id;
  uint32_t special_index; /* index among the specials (allowed sets), or TOK__NONE */
  bool special, single_word, lstrip, rstrip, normalized;
} tok__added;

/* A byte trie over the matched texts of one group of added tokens. */
typedef struct tok__matcher {
  uint32_t n_nodes;
  uint32_t *child_start; /* n_nodes + 1: node i's children are [start[i], start[i+1]) */
  uint8_t *child_byte;   /* sorted per node */
  uint32_t *child_node;
  uint32_t *terminal;    /* n_nodes: added-token index ending here, or TOK__NONE */
  uint64_t first[4];     /* bytes that start some token */
  int single_first;      /* the only such byte, or -1 */
} tok__matcher;

tok_err tok__matcher_build(tok__matcher *mt, const tok__added *added, size_t n_added,
                           bool normalized_group, tok_error *err);
void tok__matcher_free(tok__matcher *mt);

/* Finds the next added token in text[from..len) as Hugging Face does: matches are taken
 * leftmost-longest over all tokens of the group; a match that is disallowed (a special not
 * in allowed, when allowed is not NULL) or fails single_word is skipped with the text it
 * covered. Returns the added-token index and sets [*start, *end) (widened by lstrip/rstrip,
 * never below `floor`), or returns -1. */
long tok__added_next(const tok__matcher *mt, const tok__added *added,
                     const tok_special_set *allowed, const uint8_t *text, size_t len,
                     size_t from, size_t floor, size_t *start, size_t *end);

/* ---------------------------------------------------------------------------------------
 * Normalizer (normalize.c): a sequence of steps, each turning a UTF-8 string into another.
 */
typedef enum {
  TOK__NORM_NFC, TOK__NORM_NFD, TOK__NORM_NFKC, TOK__NORM_NFKD, TOK__NORM_LOWERCASE,
  TOK__NORM_REPLACE, TOK__NORM_PREPEND, TOK__NORM_STRIP, TOK__NORM_STRIP_ACCENTS,
} tok__norm_kind;

typedef struct tok__norm_step {
  tok__norm_kind kind;
  pcre2_code *re;      /* REPLACE: the pattern (a string pattern compiled literally) */
  bool re_jit;
  char *text;          /* REPLACE: the replacement; PREPEND: the prefix */
  size_t text_len;
  bool left, right;    /* STRIP */
} tok__norm_step;

typedef struct tok__normalizer {
  tok__norm_step *steps;
  size_t n_steps;
} tok__normalizer;

/* ---------------------------------------------------------------------------------------
 * Pre-tokenizer (pretok.c): a sequence of steps, each splitting every piece further.
 */
typedef enum {
  TOK__PRE_SPLIT,        /* a regex or string pattern */
  TOK__PRE_TIKTOKEN,     /* tiktoken: only the regex's matches are pieces */
  TOK__PRE_BYTELEVEL,    /* add_prefix_space, then (use_regex) GPT-2's pattern */
  TOK__PRE_METASPACE,
  TOK__PRE_DIGITS,
  TOK__PRE_WHITESPACE,   /* \w+|[^\w\s]+ */
  TOK__PRE_WHITESPACE_SPLIT,
  TOK__PRE_PUNCTUATION,
  TOK__PRE_BERT,         /* whitespace removed, then punctuation isolated */
} tok__pre_kind;

typedef enum {
  TOK__SPLIT_REMOVED, TOK__SPLIT_ISOLATED, TOK__SPLIT_MERGED_WITH_PREVIOUS,
  TOK__SPLIT_MERGED_WITH_NEXT, TOK__SPLIT_CONTIGUOUS,
} tok__split_behavior;

typedef enum { TOK__PREPEND_ALWAYS, TOK__PREPEND_FIRST, TOK__PREPEND_NEVER } tok__prepend_scheme;

typedef struct tok__pre_step {
  tok__pre_kind kind;
  tok__split_behavior behavior;
  bool invert;
  pcre2_code *re;      /* SPLIT, TIKTOKEN, BYTELEVEL (use_regex), WHITESPACE */
  bool re_jit;
  tok__scan_kind scan; /* a hand-written scanner for re's pattern (scan.h), or none */
  bool add_prefix_space;           /* BYTELEVEL */
  char replacement[5];             /* METASPACE: UTF-8 of the replacement character */
  uint8_t replacement_len;
  tok__prepend_scheme prepend;     /* METASPACE */
  bool split;                      /* METASPACE */
  bool individual_digits;          /* DIGITS */
} tok__pre_step;

typedef struct tok__pretokenizer {
  tok__pre_step *steps;
  size_t n_steps;
} tok__pretokenizer;

#define TOK__MAX_PRE_STEPS 8

tok_err tok__regex_compile(const char *pattern, size_t len, bool literal, pcre2_code **re,
                           bool *jit, const char *what, tok_error *err);

/* ---------------------------------------------------------------------------------------
 * Decoder (decode.c): a sequence of steps over the list of token strings, as in Hugging
 * Face (decode_chain), joined at the end.
 */
typedef enum {
  TOK__DEC_BYTELEVEL, TOK__DEC_METASPACE, TOK__DEC_REPLACE, TOK__DEC_BYTE_FALLBACK,
  TOK__DEC_FUSE, TOK__DEC_STRIP,
} tok__dec_kind;

typedef struct tok__dec_step {
  tok__dec_kind kind;
  pcre2_code *re;        /* REPLACE */
  bool re_jit;
  char *text;            /* REPLACE: replacement */
  size_t text_len;
  char ch[5];            /* METASPACE replacement, STRIP content (UTF-8) */
  uint8_t ch_len;
  bool prepend;          /* METASPACE: prepend_scheme != never */
  uint32_t start, stop;  /* STRIP */
} tok__dec_step;

typedef struct tok__decoder {
  tok__dec_step *steps;
  size_t n_steps;
  /* The decoder is ByteLevel alone over a byte-level model (or tiktoken): a token decodes
   * to tok_token_bytes, then the text is the UTF-8 repair of their concatenation. */
  bool bytes_only;
  bool cleanup_spaces; /* transformers' clean_up_tokenization_spaces */
} tok__decoder;

/* ---------------------------------------------------------------------------------------
 * Encoding: the whole pipeline.
 */
struct tok_encoding {
  tok_encoding_info info;
  char *name;
  char **aliases;            /* NULL-terminated */
  char *source, *pattern, *components_text;
  char sha256[65];
  char *bos_token, *eos_token;
  char *chat_template; /* from tokenizer_config.json or chat_template.jinja; NULL: none */
  uint64_t max_model_len; /* info.max_model_len */
  tok__model *model;         /* owned by the registry */
  tok__normalizer normalizer;
  tok__added *added;
  size_t n_added;
  tok_special_token *special; /* info.special: the specials among the added tokens */
  tok__matcher raw_tokens;    /* added tokens matched in the text as given */
  tok__matcher norm_tokens;   /* added tokens matched after normalization */
  tok__pretokenizer pre;
  uint32_t *post_prefix, *post_suffix; /* ids the post-processor adds around the text */
  size_t n_post_prefix, n_post_suffix;
  tok__decoder decoder;
  bool default_all_special;  /* NULL allowed set means all specials (Hugging Face) */
  bool needs_align;          /* a stage looks at original positions (Metaspace "first") */
  bool splits;               /* a long text may be cut at tok__split_point (encode.c) */
  uint64_t *added_bits;      /* a bit per id below id_end_all: the id is an added token */
  uint32_t *added_sorted;    /* n_added pairs (id, index into added), sorted by id */
  uint32_t id_end_all;       /* highest id of model and added tokens + 1 */
  uint64_t serial;           /* unique in the process, never reused (the prefix cache's key:
                                an address can be reused by a later registry) */
};

struct tok_registry {
  tok_encoding **encs;
  size_t n_encs;
  tok__model **models;
  size_t n_models;
  char *cache_dir; /* the backtracking tables' cache (tok_load_opts), or NULL */
  char *cache_refused; /* why the given cache_dir is not used, or NULL */
};

/* The added token with this id, or NULL. */
const tok__added *tok__added_of(const tok_encoding *enc, uint32_t id);

/* encoding.c: the encoding object, for loaders */
tok_encoding *tok__encoding_new(const char *name);
void tok__encoding_free(tok_encoding *enc);
/* Derives the lookup tables and info of a configured encoding (specials list, id maps,
 * matchers, decoder fast path). */
tok_err tok__encoding_finish(tok_encoding *enc, tok_error *err);

/* ---------------------------------------------------------------------------------------
 * Per-thread scratch.
 */
typedef struct tok__text_buf {
  uint8_t *s;
  size_t len, cap;
  uint32_t *align;   /* 2 per byte: the original [start, end) it came from; NULL if unused */
  size_t align_cap;
} tok__text_buf;

struct tok_scratch {
  tok_limits limits;
  pcre2_match_data *md;
  pcre2_match_context *mctx;
  pcre2_jit_stack *jit_stack;

  uint32_t *ids;
  uint32_t *offsets;  /* 2 per id */
  size_t ids_cap;

  /* arrays of the mergers (bpe.c), sized for the longest piece seen; part i starts at
   * byte i of the piece */
  uint32_t *part_id;   /* piece_cap + 1: the part's own token */
  uint32_t *part_pair; /* piece_cap + 1: priority of the part joined with the next */
  uint32_t *part_next; /* piece_cap + 1: start of the next part */
  uint32_t *part_prev; /* piece_cap + 1: start of the previous part, or a marker */
  uint8_t *part_fixed; /* piece_cap + 1: parts that never merge (fallback, unknown) */
  uint32_t *heap_pos;  /* piece_cap + 1: the heap merger's heap of positions */
  uint32_t *heap_slot; /* piece_cap + 1: each position's index in heap_pos */
  size_t piece_cap;

  tok__text_buf norm[2];                  /* normalizer output, double-buffered */
  tok__text_buf level[TOK__MAX_PRE_STEPS]; /* pre-tokenizer steps that rewrite a piece */
  tok_buf dec[2];                          /* decoder token lists, double-buffered */
  uint32_t *dec_tok;                       /* 2 per token: offset, length into dec[i] */
  size_t dec_tok_cap[2];
  uint32_t *dec_tok2;
  uint32_t *u32;                           /* code points for Unicode normalization */
  size_t u32_cap;

  tok_work_stats stats;
  /* The piece cache (tok__piece_find below): the last encodings of pieces of up to 16
   * bytes, direct-mapped, 2^TOK__PIECE_CACHE_BITS entries, allocated on first use (NULL:
   * none). An entry is the piece's bytes (tok__head8 of its first and second eight, zero
   * when absent), serial << 5 | length, and its ids, TOK__NONE after the last (ids[0]
   * TOK__NONE: more than three; one id: ids[2] says whether it spans the piece). */
  struct tok__piece_entry {
    uint64_t head[2];
    uint32_t key, ids[3];
  } *piece_cache;
  bool regex_only;     /* tests: run the patterns on PCRE2 even where a scanner exists */
  /* the prefix cache's boundaries of the text being encoded and their keys (prefix.c) */
  uint32_t *pc_pos;
  uint64_t *pc_key;
  size_t pc_cap;
};

/* prefix.c: the prefix cache. A job is one text's boundaries (in the scratch), its key,
 * and what a lookup found. */
typedef struct tok__prefix_job {
  const tok_special_set *allowed; /* the specials that may match (NULL: all) */
  uint64_t allowed_fp;
  uint64_t key;            /* of text[0, last_bound) */
  size_t n_bounds;         /* in scratch->pc_pos / pc_key */
  uint32_t last_bound;     /* the last boundary, or the whole length when there is none */
  size_t last_bound_ids;   /* ids before last_bound (set by the encoder, for insert) */
  uint32_t hit_bound;      /* a hit: the bytes it covers (the length when exact) */
  size_t hit_ids;          /* ... and the ids it gave */
  bool exact;
} tok__prefix_job;

/* Finds text's boundaries (the ends of raw added-token matches with allowed) and keys. */
tok_err tok__prefix_plan(const tok_prefix_cache *c, const tok_encoding *enc, const tok_special_set *allowed,
                         tok_scratch *s, const uint8_t *text, size_t len, tok__prefix_job *job, tok_error *err);
/* The longest remembered prefix of text at one of its boundaries, or text whole: its ids
 * written where room(ctx, n) says (room NULL: count only), job's hit fields set; false
 * for a miss. */
bool tok__prefix_lookup(const tok_prefix_cache *c, const tok_encoding *enc, tok_scratch *s, const uint8_t *text,
                        size_t len, tok__prefix_job *job, uint32_t *(*room)(void *ctx, size_t n), void *ctx);
/* Remembers text and its ids (the text's own, without the post-processor's). */
void tok__prefix_insert(const tok_prefix_cache *c, const tok_encoding *enc, const uint8_t *text, size_t len,
                        const uint32_t *ids, size_t n_ids, const tok__prefix_job *job);

#define TOK__PIECE_CACHE_BITS 13 /* 8,192 entries of 32 bytes: 256 KiB a scratch */
#define TOK__PIECE_CACHE_LEN 16  /* the longest piece it keeps (the key holds the length in 5 bits) */

/* The piece cache (tok_scratch), used by encode.c for pieces and by bpe.c for the words of
 * long pieces: the entry for a piece of up to 16 bytes, its key in *k (NULL: longer, or
 * no cache). A text's pieces recur (" the", ",", "    return"): an entry in 256 KiB
 * answers before the index's pilot and slot loads and its multiplies, and a piece that is
 * not a token without the backtracker or the merge loop. Exact: the key is the whole piece
 * and the model's serial. */
static inline struct tok__piece_entry *tok__piece_find(tok_scratch *s, const tok__model *m, const uint8_t *p,
                                                       size_t len, struct tok__piece_entry *k)
{
  if (len > TOK__PIECE_CACHE_LEN) return NULL;
  /* zeroed: key 0 is no model's */
  if (!s->piece_cache && !(s->piece_cache = calloc((size_t)1 << TOK__PIECE_CACHE_BITS, sizeof *s->piece_cache)))
    return NULL;
  k->head[0] = tok__head8(p, len < 8 ? len : 8);
  k->head[1] = len > 8 ? tok__head8(p + 8, len - 8) : 0;
  k->key = m->serial << 5 | (uint32_t)len;
  uint64_t x = (k->head[0] ^ k->key ^ k->head[1] * 0xBF58476D1CE4E5B9ull) * 0x9E3779B97F4A7C15ull;
  return &s->piece_cache[x >> (64 - TOK__PIECE_CACHE_BITS)];
}

/* The ids (and offsets) of the piece keyed by want from its entry e, and how many; 0 when
 * e holds another piece, or more than three ids, or where offsets are asked for, several
 * ids or one not known to span the piece (an entry has no offsets). */
static inline size_t tok__piece_cached(tok_scratch *s, const struct tok__piece_entry *e,
                                       const struct tok__piece_entry *want, size_t len, uint32_t *ids,
                                       uint32_t *offs)
{
  if (!e || e->head[0] != want->head[0] || e->key != want->key || e->head[1] != want->head[1] ||
      e->ids[0] == TOK__NONE)
    return 0;
  if (e->ids[1] == TOK__NONE) {
    if (offs) {
      if (e->ids[2] != 1) return 0;
      offs[0] = 0, offs[1] = (uint32_t)len;
    }
    s->stats.direct_hits++;
    ids[0] = e->ids[0];
    return 1;
  }
  if (offs) return 0;
  ids[0] = e->ids[0];
  ids[1] = e->ids[1];
  if (e->ids[2] == TOK__NONE) return 2;
  ids[2] = e->ids[2];
  return 3;
}

/* Keeps a piece's encoding in its entry (e NULL: none). One id that spans the piece
 * (`spans`: the piece is that token, or its offsets say so) is marked so (ids[2] = 1):
 * only such an entry answers where offsets are asked for, since a piece with bytes the
 * vocabulary lacks can come out as one id over part of it. */
static inline void tok__piece_remember(struct tok__piece_entry *e, const struct tok__piece_entry *want,
                                       const uint32_t *ids, size_t produced, bool spans)
{
  if (!e) return;
  *e = *want;
  for (size_t j = 0; j < 3; j++) e->ids[j] = produced <= 3 && j < produced ? ids[j] : TOK__NONE;
  if (produced == 1 && spans) e->ids[2] = 1;
}

tok_err tok__scratch_fit(tok_scratch *s, size_t piece_len);
tok_err tok__text_reserve(tok__text_buf *t, size_t len, bool align);

/* ---------------------------------------------------------------------------------------
 * Stage entry points used by encode.c.
 */

/* bpe.c: encodes one piece (the model stage). Appends at most piece_len ids at ids (and
 * [start, end) pairs relative to the piece at offsets when not NULL) and sets *n_out.
 * The scratch arrays must hold piece_len + 1 entries (tok__scratch_fit). */
tok_err tok__bpe_encode_piece(const tok__model *m, tok_scratch *s, const uint8_t *piece,
                              size_t piece_len, uint32_t *ids, uint32_t *offsets,
                              size_t *n_out, tok_error *err);
/* The id of a piece that is one token and encodes to it (most pieces), else TOK__NONE. */
static inline uint32_t tok__bpe_whole(const tok__model *m, const uint8_t *piece, size_t piece_len)
{
  if (piece_len > m->max_len) return TOK__NONE;
  /* a long piece (Chinese or Japanese text between punctuation, most often) is rarely a
   * token: a table that says so saves the index's cache misses (above the pieces the
   * piece cache keeps, below which the test costs more than it saves) */
  if (piece_len > TOK__PIECE_CACHE_LEN && m->max_len2 &&
      piece_len > m->max_len2[(uint32_t)piece[0] << 8 | piece[1]])
    return TOK__NONE;
  uint32_t id = piece_len == 1 && m->byte_level ? m->byte_id[piece[0]]
                                                : tok__token_lookup(m, piece, piece_len);
  return id != TOK__NONE && (!m->whole_ok || tok__bit(m->whole_ok, id)) ? id : TOK__NONE;
}
/* tok__bpe_encode_piece for a piece that tok__bpe_whole has already turned down. */
tok_err tok__bpe_encode_rest(const tok__model *m, tok_scratch *s, const uint8_t *piece,
                             size_t piece_len, uint32_t *ids, uint32_t *offsets, size_t *n_out,
                             tok_error *err);
/* backtrack.c: the backtracking encoder for long pieces of byte-level models. tok__bt_get
 * gives its tables when they are built, building them first when `build` is set (NULL: not
 * built, or the model does not allow it; use the scan or heap merger);
 * tok__bt_encode writes a piece's ids (and offsets relative to it) and returns how many,
 * or SIZE_MAX if it could not (then the heap merger must run). The scratch must fit n. */
const tok__bt *tok__bt_get(const tok__model *m, bool build);
#define TOK__BT_BUILD_PIECE 4096
size_t tok__bt_encode(const tok__model *m, const tok__bt *bt, tok_scratch *s, const uint8_t *p,
                      size_t n, uint32_t *ids, uint32_t *offsets);
void tok__bt_free(tok__bt *bt);
/* Sets m->fingerprint (byte-level models) and uses the tables of the model's blob in the
 * built-in image (bt_image.S) when there is one: true then. Called by tok__model_finish,
 * once per model (the hash costs about 1 ms for 200,000 tokens). */
bool tok__bt_attach_image(const tok__model *m);
/* For tests: m's tables built anew (free with tok__bt_free; NULL when not applicable), and
 * whether two sets of m's tables are the same. */
tok__bt *tok__bt_build(const tok__model *m);
bool tok__bt_same(const tok__model *m, const tok__bt *a, const tok__bt *b);
/* The table cache (a directory; NULL: none): tok__bt_cache_load uses m's cache file when
 * it is there, whole (checksum) and sane (every value in range: tables from a file are
 * never trusted), true then; tok__bt_cache_store writes m's built tables there (atomically;
 * failures are ignored: the cache is an optimization). */
bool tok__bt_cache_load(const tok__model *m, const char *dir);
void tok__bt_cache_store(const tok__model *m, const char *dir);
/* Recomputes the checksum in the head of a cache file's bytes (len of them, at least a
 * head), so that a fuzz target's changes reach the checks behind it. Tests only. */
void tok__bt_cache_seal(uint8_t *blob, size_t len);
/* Whether m's tables are the image's (or a cache file's). */
bool tok__bt_from_image(const tok__model *m);
/* Builds m's tables (if not yet) and writes them as one blob of an image; writes nothing
 * when m does not allow the backtracker. For tools/gen_bt_image.c. */
tok_err tok__bt_image_write(const tok__model *m, FILE *out);
/* The length above which byte-level pieces use the heap merger instead of the scan. */
#define TOK__LONG_PIECE 24
/* The length above which byte-level pieces use the backtracking encoder, when the model
 * allows it (measured with its trie: 2-4 equally fast, 10 slower on every file). */
#define TOK__BT_PIECE 4
/* Merges a piece without first trying it as a whole token. */
tok_err tok__bpe_merge_only(const tok__model *m, tok_scratch *s, const uint8_t *piece,
                            size_t piece_len, uint32_t *ids, size_t *n_out);
/* For tests: force one merger. */
tok_err tok__bpe_encode_piece_scan(const tok__model *m, tok_scratch *s, const uint8_t *piece,
                                   size_t piece_len, uint32_t *ids, size_t *n_out);
tok_err tok__bpe_encode_piece_bt(const tok__model *m, tok_scratch *s, const uint8_t *piece,
                                 size_t piece_len, uint32_t *ids, size_t *n_out);
tok_err tok__bpe_encode_piece_heap(const tok__model *m, tok_scratch *s, const uint8_t *piece,
                                   size_t piece_len, uint32_t *ids, size_t *n_out);

/* encode.c: the first position in [from, to) of t[0..len) where tok_split may start a part
 * (a space between two letters), or `to`. */
size_t tok__split_point(const tok_encoding *enc, const uint8_t *t, size_t len, size_t from,
                        size_t to);

/* normalize.c: normalizes in[0..len) into *out (with alignment when want_align: align gives
 * each output byte's original range); *out NULL when no step changed anything (ASCII text
 * and NFC, for one): the input is its own normalized form. */
tok_err tok__normalize(const tok__normalizer *n, tok_scratch *s, const uint8_t *in, size_t len,
                       uint32_t base, bool want_align, tok__text_buf **out, tok_error *err);
/* True when no normalization of that kind changes c and nothing before c composes with
 * it, so text may be cut before c (see normalize.c). */
bool tok__nf_stable(uint32_t c, tok__norm_kind kind);
/* Normalizes a short string at load time into a malloc'd copy. */
tok_err tok__normalize_alloc(const tok__normalizer *n, const char *in, size_t len, char **out,
                             size_t *out_len, tok_error *err);

/* pretok.c: calls emit for every piece of text, in order. A piece is given as bytes with an
 * alignment: align NULL means byte i of the piece is original byte base + i. want_align:
 * pieces a step rewrites must carry an alignment (offsets were asked for, or a step needs
 * original positions: tok_encoding.needs_align). */
typedef tok_err (*tok__piece_fn)(void *ctx, const uint8_t *piece, size_t len,
                                 const uint32_t *align, uint32_t base);
tok_err tok__pretokenize(const tok__pretokenizer *p, tok_scratch *s, const uint8_t *text,
                         size_t len, const uint32_t *align, uint32_t base, bool want_align,
                         tok__piece_fn emit, void *ctx, tok_error *err);
/* The scanner kind whose pieces (tok__scan_batch) are exactly this pre-tokenizer's, or
 * TOK__SCAN_NONE: then tok__pretokenize. */
tok__scan_kind tok__pretok_direct(const tok__pretokenizer *p, const tok_scratch *s);

/* decode.c */
tok_err tok__decode(const tok_encoding *enc, tok_scratch *s, const uint32_t *ids, size_t n,
                    const tok_decode_opts *opts, bool raw, tok_buf *out, tok_error *err);

/* utf8.c: tok_utf8_valid without its vector path (the tests compare the two). */
bool tok__utf8_valid_portable(const char *text, size_t len, size_t *bad_pos);

/* unicode.c: character classes the stages need, by Unicode general category (utf8proc). */
uint32_t tok__utf8_next(const uint8_t *s, size_t len, size_t *i); /* valid UTF-8 only */
bool tok__is_whitespace(uint32_t c);  /* Rust char::is_whitespace (White_Space) */
bool tok__is_word(uint32_t c);        /* Rust regex \w: alphabetic, marks, digits, Pc, joiners */
bool tok__is_punctuation(uint32_t c); /* HF: ASCII punctuation or a P* category */
bool tok__is_numeric(uint32_t c);     /* Rust char::is_numeric: Nd, Nl, No */
bool tok__is_mark(uint32_t c);        /* Mn (combining marks, for StripAccents) */
/* GPT-2's byte <-> printable character map used by byte-level vocabularies. */
uint32_t tok__byte_char(uint8_t b); /* the character spelling byte b */
int tok__char_byte(uint32_t c);      /* the byte character c spells, or -1 */

/* base64.c: decodes a string tok_base64_decoded_len accepted */
void tok__base64_decode_unchecked(const char *s, size_t len, uint8_t *out);

/* memory.c: memory accounting (tok_registry_memory). Adds a structure's array to acc,
 * merged with what acc already has of that tokenizer, structure and backing. */
typedef struct tok__mem_acc {
  tok_memory_item *items;
  size_t cap, n;
  const char *tokenizer;
} tok__mem_acc;
void tok__mem_add(tok__mem_acc *acc, const char *structure, const void *p, size_t bytes, bool file_backed);
/* backtrack.c: adds m's backtracking tables and memo */
void tok__bt_memory(const tok__model *m, tok__mem_acc *acc);

/* sha256.c */
void tok__sha256_hex(const void *data, size_t len, char out[65]);

/* embed.c: the vocabulary files built into the binary. */
typedef struct tok__embedded_file {
  const char *name;
  const char *data;
  size_t len;
} tok__embedded_file;
bool tok__embedded_find(const char *name, tok__embedded_file *out);
/* Tells the kernel the embedded copy of a file is no longer needed in memory. */
void tok__embedded_release(const tok__embedded_file *f);

#endif
